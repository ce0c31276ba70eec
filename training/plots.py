"""PNG plots of an evaluation: predicted against actual, calibration, hit ratio, forecast."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display here or on CI
import matplotlib.pyplot as plt
import numpy as np
from sklearn.calibration import calibration_curve

from predictor.training.evaluate import Evaluation

__all__ = ["write_plots"]


def _latency(data: dict, path: Path) -> Path | None:
    y, p = np.asarray(data["latency_true"], float), np.asarray(data["latency_pred"], float)
    known = ~(np.isnan(y) | np.isnan(p))
    if known.sum() < 10:
        return None
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.loglog(y[known], p[known], ".", alpha=0.15, markersize=2)
    lo, hi = np.nanmin(y[known][y[known] > 0]), np.nanmax(y[known])
    ax.plot([lo, hi], [lo, hi], "k--", linewidth=1)
    ax.set(xlabel="actual latency (ms)", ylabel="predicted p50 (ms)",
           title="Latency: predicted against actual (test part)")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _calibration(data: dict, path: Path) -> Path | None:
    y, p = np.asarray(data["success_true"], float), np.asarray(data["success_prob"], float)
    known = ~(np.isnan(y) | np.isnan(p))
    if known.sum() < 10 or len(np.unique(y[known])) < 2:
        return None
    frac, mean = calibration_curve(y[known], p[known], n_bins=10, strategy="quantile")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(mean, frac, "o-", label="batch model")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect")
    ax.set(xlabel="predicted success probability", ylabel="observed success rate",
           title="Success: calibration (test part)")
    ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _hit_ratio(data: dict, path: Path) -> Path:
    sizes, pred, lru, opt = data["sizes"], data["predictive"], data["lru"], data["belady"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sizes, pred, "o-", label="predictive")
    ax.plot(sizes, lru, "s-", label="LRU")
    ax.plot(sizes, opt, "^-", label="Belady (demand-fetch optimum)")
    ax.set_xscale("log")
    ax.set(xlabel="cache size (keys)", ylabel="hit ratio", title="Hit ratio against cache size")
    ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _forecast(totals, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4))
    minutes = (totals.index - totals.index[0]) / 60.0
    ax.plot(minutes, totals["y"], label="load (calls per window)", linewidth=1)
    ax.plot(minutes, totals["mean"], label="forecast (expected)", linewidth=1)
    ax.plot(minutes, totals["upper"], label="forecast (upper quantile)", linewidth=1,
            linestyle="--")
    ax.set(xlabel="minutes into the test part", ylabel="calls", title="Load forecast")
    ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def write_plots(evaluation: Evaluation, folder: str | Path) -> list[Path]:
    """Write every plot the log supports into ``folder``; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path | None] = []
    perf = evaluation.plots.get("performance")
    if perf is not None:
        written.append(_latency(perf, folder / "latency_predicted_vs_actual.png"))
        written.append(_calibration(perf, folder / "success_calibration.png"))
    cache = evaluation.plots.get("cache")
    if cache is not None:
        written.append(_hit_ratio(cache, folder / "cache_hit_ratio_vs_size.png"))
    scaling = evaluation.plots.get("scaling")
    if scaling is not None:
        written.append(_forecast(scaling, folder / "load_forecast.png"))
    return [p for p in written if p is not None]
