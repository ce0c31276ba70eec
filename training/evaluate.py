"""``predictor evaluate LOG``: replay a log in time order and score every family.

The report follows DESIGN's evaluation contract: the first 80 % of the time
span trains, the last 20 % tests, online variants learn prequentially (with
label delay) over the whole stream and are scored on the test part, and
every figure stands beside its baselines. A family the log cannot support
is ``{"reason": ...}``; a family that fails on an unexpected log is reported
the same way (with the error) rather than sinking the other families.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, as_completed
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from predictor.data.frame import records_to_frame
from predictor.data.readers import ReadSummary, read_records
from predictor.data.schema import Record
from predictor.training.cluster import cluster_backend
from predictor.training.families import EVALUATE_ORDER, FAMILIES, ORDER, READS
from predictor.training.features import (
    PARTS,
    Columns,
    Features,
    FeaturesFile,
    Kept,
    Options,
    Unsupported,
)
from predictor.training.ranges import read_in_ranges
from predictor.training.workers import WorkerPool, default_workers

__all__ = ["HOLDOUT_LOSSES", "READS", "Evaluation", "FamilyRun",
           "evaluate_features", "evaluate_frame", "evaluate_log", "load_log", "load_records",
           "release_freed_memory", "run_family", "start_family", "start_task"]

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """A finished evaluation: the contract report, each family's fit and its plot data.

    Attributes
    ----------
    report
        DESIGN's evaluation report.
    features
        The features every step read.
    fits
        Family -> its fit (``PerformanceFit``, ``ResourcesFit``, ...); a family
        the log cannot support has none. Each fit's ``bundle`` is what training
        registers (``None`` where nothing is).
    plots
        Family -> the data of its plots.
    also
        Name -> result of each other task run beside the families
        (:func:`evaluate_features`' ``also``).
    losses
        Family -> its bundle's loss on the holdout, where the family computed it
        (``Options.holdout_losses``; the families in :data:`HOLDOUT_LOSSES`).
    """

    report: dict[str, Any]
    features: Features | None = None
    fits: dict[str, Any] = field(default_factory=dict)
    plots: dict[str, Any] = field(default_factory=dict)
    also: dict[str, Any] = field(default_factory=dict)
    losses: dict[str, float | None] = field(default_factory=dict)

    def fetch_fits(self, stored: FeaturesFile) -> None:
        """Read back the fits that the workers kept in ``stored``'s folder
        (:func:`evaluate_features`' ``load_features=False``)."""
        self.fits = {family: stored.fetch(fit) if isinstance(fit, Kept) else fit
                     for family, fit in self.fits.items()}


def _read(paths: str | Path | list, summary: ReadSummary | None, *, values: bool = False
          ) -> Iterator[Record]:
    """The valid records of one or more telemetry files, file by file, as read (with
    ``values``, what a frame reads of them: :func:`read_records`)."""
    summary = summary if summary is not None else ReadSummary()
    for path in paths if isinstance(paths, list) else [paths]:
        yield from read_records(path, summary, values=values)


def load_records(paths: str | Path | list, summary: ReadSummary | None = None) -> list[Record]:
    """Read and validate one or more telemetry files, in time order (stable for ties)."""
    return sorted(_read(paths, summary), key=lambda rec: rec.epoch)


def load_log(paths: str | Path | list, summary: ReadSummary | None = None, *,
             pool: WorkerPool | None = None) -> pd.DataFrame:
    """Read one or more telemetry files into a time-ordered frame.

    The records stream into columns: a log's frame is far smaller than its
    records, so they are never all held at once. The order is
    :func:`load_records`' (stable for ties). Given this machine's workers
    (``pool``), a large JSON-lines log is read by all of them, a byte range
    each, into the same frame (:mod:`predictor.training.ranges`).
    """
    if pool is not None:
        summary = summary if summary is not None else ReadSummary()
        frame = read_in_ranges(paths if isinstance(paths, list) else [paths], summary, pool,
                               workers=pool.workers)
        if frame is not None:
            return frame
    return records_to_frame(_read(paths, summary, values=True))


#: family -> (fit step, score step) (``STEPS``, built when first asked: see
#: :func:`__getattr__`). A fit step raises :class:`Unsupported` when the log cannot support
#: the family; a score step takes the fit and returns (section, plot data).
Steps = dict[str, tuple[Callable[..., Any], Callable[..., tuple[dict, Any]]]]


#: What the families' tasks import (:func:`_steps`): an evaluation's workers start with
#: them imported (``WorkerPool``'s ``preload``).
WORKER_MODULES = tuple(f"predictor.training.eval_{name}" for name in (
    "cache", "performance", "resources", "risk", "scaling", "selection"))


@functools.cache
def _steps() -> Steps:
    from predictor.training.eval_cache import fit_cache, score_cache
    from predictor.training.eval_performance import fit_performance, score_performance
    from predictor.training.eval_resources import fit_resources, score_resources
    from predictor.training.eval_risk import fit_risk, score_risk
    from predictor.training.eval_scaling import fit_scaling, score_scaling
    from predictor.training.eval_selection import fit_selection, score_selection

    return {
        "performance": (fit_performance, score_performance),
        "selection": (fit_selection, score_selection),
        "resources": (fit_resources, score_resources),
        "cache": (fit_cache, score_cache),
        "scaling": (fit_scaling, score_scaling),
        "risk": (fit_risk, score_risk),
    }


@functools.cache
def _columns() -> dict[str, Columns]:
    """family -> the columns its steps read of the parts it holds, where that is not all
    of them (``COLUMNS``; :data:`predictor.training.features.Columns`: part -> its columns
    read). A task unpickles and holds only those (a column is ~8 MB per million records);
    any other raises ``KeyError`` naming it. A family that replays records rebuilt from the
    frame reads the columns its decisions' plug-ins learn from (``record_fields``), and one
    whose featurizer takes the history whole, every history feature."""
    from predictor.models.risk import RISK_FEATURES
    from predictor.training.eval_resources import HISTORY as RESOURCES_HISTORY
    from predictor.training.eval_risk import FRAME_COLUMNS as RISK_FRAME
    from predictor.training.eval_selection import FRAME_COLUMNS as SELECTION_FRAME

    return {
        "performance": {"calls": ("ts", "kind", "server", "tool", "task_type", "phase",
                                  "input_tokens", "concurrency", "attempt", "attrs",
                                  "latency_ms", "success", "output_tokens", "cost_usd")},
        "selection": {"calls": ("ts", "kind", "server", "tool", "task_type", "phase",
                                "input_tokens", "attrs", "latency_ms", "success",
                                "output_tokens", "cost_usd"),
                      **({} if SELECTION_FRAME is None else {"frame": SELECTION_FRAME})},
        "resources": {"history": RESOURCES_HISTORY},
        "cache": {"calls": ("ts", "kind", "cache_key")},
        "scaling": {"calls": ("ts", "kind", "server")},
        "risk": {"calls": ("ts", "kind", "server", "tool", "concurrency", "attempt",
                           "latency_ms", "success", "error_type", "recovery", "recovered"),
                 "history": RISK_FEATURES,
                 **({} if RISK_FRAME is None else {"frame": RISK_FRAME})},
    }


def __getattr__(name: str) -> Any:
    """``STEPS`` and ``COLUMNS``, built when first asked (PEP 562).

    They name the families' modules, which import the libraries the fits
    need; a process that only plans a job or computes its features (training's
    main process, while its workers fit) need not hold them.
    """
    if name == "STEPS":
        return _steps()
    if name == "COLUMNS":
        return _columns()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class FamilyRun:
    """What one family's fit and score steps produced, how long each took, at what memory.

    ``peak_mb`` is the peak resident memory of the process while the family
    ran (``None`` where the system cannot say: it needs Linux's resettable
    peak, ``/proc/self/clear_refs``).
    """

    family: str
    section: dict[str, Any]
    fit: Any = None
    plot: Any = None
    fit_s: float = 0.0
    score_s: float = 0.0
    peak_mb: float | None = None
    #: ``(loss,)``: the bundle's loss on the holdout, when computed (``Options.holdout_losses``).
    holdout_loss: tuple[float | None] | None = None
    #: The process that ran the family (a worker's, which exits after its task).
    pid: int = field(default_factory=os.getpid)


#: The families whose bundle's holdout loss reads only the calls and their history: the same
#: from the calls alone as from the whole frame (the load bundle's reads the frame's
#: windows, and stays the main process's).
HOLDOUT_LOSSES = ("performance", "resources", "risk", "cache")


def release_freed_memory() -> bool:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``); whether
    it could.

    A process that dropped a large frame keeps the pages its many small
    objects lived on: freed, reused by this process only, but resident, so
    they count in its memory (and in a job's, summed over its processes)
    until they are handed back.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return bool(libc is not None and libc.malloc_trim(0))
    except (OSError, AttributeError):  # not glibc
        return False


def _reset_peak() -> bool:
    """Reset this process's peak resident memory (Linux); whether it could."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float | None:
    """This process's peak resident memory since the last reset, in MB (Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_family(family: str, features: Features | FeaturesFile, options: Options) -> FamilyRun:
    """Fit, then score, one family; a family that fails is reported, not raised.

    An unexpected error in either step becomes the section's ``reason`` (with
    the error), so one family cannot sink the others on an odd log.
    ``features`` may be the file they were written to (:class:`FeaturesFile`).
    """
    fit_step, score_step = _steps()[family]
    release_freed_memory()  # what the worker's previous task left: not this one's peak
    measured = _reset_peak()
    # Only the parts the family reads, however the features came (here too when given
    # them whole, so that a part a family reads without naming it fails every run).
    features = _loaded(features, READS[family], _columns().get(family))
    start = time.perf_counter()
    try:
        fit = fit_step(features, options)
    except Unsupported as why:
        return FamilyRun(family, {"reason": str(why)}, fit_s=time.perf_counter() - start)
    except Exception as err:
        log.error("%s failed to fit:\n%s", family, traceback.format_exc())
        return FamilyRun(family, {"reason": f"evaluation failed: {type(err).__name__}: {err}"},
                         fit_s=time.perf_counter() - start)
    fitted = time.perf_counter()
    try:
        section, plot = score_step(features, fit, options)
    except Exception as err:
        log.error("%s failed to score:\n%s", family, traceback.format_exc())
        section, plot = {"reason": f"evaluation failed: {type(err).__name__}: {err}"}, None
    # What only scoring needed (feature matrices over every call) is not sent back.
    fit = replace(fit, **dict.fromkeys(getattr(fit, "WORKSPACE", ())))
    loss = None
    bundle = getattr(fit, "bundle", None)
    if options.holdout_losses and bundle is not None and family in HOLDOUT_LOSSES:
        history = features.history if "history" in READS[family] else None
        try:
            loss = (bundle.loss(features.calls, features.test, history),)
        except Exception:  # left to the register step, which reports it as it always has
            log.warning("%s: holdout loss not computed here:\n%s", family,
                        traceback.format_exc())
    return FamilyRun(family, section, fit, plot, fitted - start, time.perf_counter() - fitted,
                     _peak_mb() if measured else None, loss)


def _run_and_keep(family: str, features: FeaturesFile, options: Options) -> FamilyRun:
    """:func:`run_family`, its fit written beside ``features`` (:meth:`FeaturesFile.keep`)
    and handed back as a :class:`Kept` handle."""
    run = run_family(family, features, options)
    if run.fit is not None:
        run.fit = features.keep(family, run.fit)
    return run


def _loaded(features: Features | FeaturesFile, parts: tuple[str, ...] = PARTS,
            columns: Columns | None = None) -> Features:
    """The features themselves (only ``parts`` of them, narrowed to ``columns``:
    :meth:`Features.only`), read from their file when given that."""
    if isinstance(features, FeaturesFile):
        return features.load(parts, columns)
    return features if parts == PARTS and columns is None else features.only(parts, columns)


@contextmanager
def _shared(features: Features | FeaturesFile, options: Options) -> Iterator[FeaturesFile]:
    """The features as this machine's workers read them: a :class:`FeaturesFile` (written
    here, for as long as the workers run, when the caller gave the features themselves).
    """
    if isinstance(features, FeaturesFile):
        yield features
        return
    with tempfile.TemporaryDirectory(prefix="predictor-features-") as folder:
        yield FeaturesFile.write(features, folder, options)


def _named(name: str, task: Callable[[], Any]) -> tuple[str, Any, float]:
    """``(name, task(), seconds it took)``: another task run beside the families."""
    start = time.perf_counter()
    result = task()
    return name, result, time.perf_counter() - start


def _report_done(result: FamilyRun | tuple[str, Any, float],
                 progress: Callable[[str], None]) -> None:
    """One progress line for a finished task: its seconds (and its worker's peak)."""
    if not isinstance(result, FamilyRun):
        progress(f"{result[0]}: done in {result[2]:.1f} s")
        return
    peak = "" if result.peak_mb is None else f", worker peak {result.peak_mb:,.0f} MB"
    progress(f"{result.family}: fitted in {result.fit_s:.1f} s, scored in "
             f"{result.score_s:.1f} s" + peak)


def start_family(pool: WorkerPool, family: str, features: FeaturesFile,
                 options: Options) -> Future:
    """Start one family in ``pool`` now, on features that need only hold the parts it reads
    (:data:`READS`): a family that reads no history starts before it is computed. Pass the
    future to :func:`evaluate_features` as ``running``; its fit is kept beside the
    features (``load_features=False``)."""
    return pool.submit(_run_and_keep, family, features, options)


def start_task(pool: WorkerPool | Executor, name: str, task: Callable[[], Any]) -> Future:
    """Start one of :func:`evaluate_features`' ``also`` tasks in ``pool`` now (before the
    features it does not read are computed); pass the future as that task. ``pool`` may
    be any executor: a thread of this process, beside a cluster's evaluation."""
    return pool.submit(_named, name, task)


def evaluate_features(features: Features | FeaturesFile, options: Options | None = None, *,
                      progress: Callable[[str], None] | None = None,
                      n_jobs: int | None = None, cluster: str | None = None,
                      also: dict[str, Callable[[], Any] | Future] | None = None,
                      pool: WorkerPool | None = None,
                      running: dict[str, Future] | None = None,
                      load_features: bool = True,
                      when_one_left: Callable[[int | None], None] | None = None
                      ) -> Evaluation:
    """Fit and score every family on computed features (see :func:`evaluate_frame`).

    ``features`` may be a :class:`FeaturesFile`: the worker processes of this
    machine then read them from the file, and the caller need not hold them
    meanwhile (they are loaded back into ``Evaluation.features`` at the end).
    ``cluster`` runs the families on a cluster (:mod:`predictor.training.cluster`);
    the features are then sent to its workers, whatever form they came in.
    ``also`` names other independent tasks (picklable callables) to run in the
    same workers, first: training learns its online state there while the
    families are evaluated. Their results are in ``Evaluation.also``. A task
    may be running already in ``pool``: its future from :func:`start_task`.
    ``pool`` is this machine's workers (:class:`WorkerPool`), started by the
    caller (who stops it); without it the evaluation starts ``n_jobs`` workers
    of its own (default: two, or one per CPU if fewer) and stops them.
    ``running`` names families the caller started in ``pool`` already (their
    futures, from :func:`start_family`); they are not started again.
    With ``load_features=False``, ``Evaluation.features`` is ``features`` as
    given (a :class:`FeaturesFile` stays one): a caller whose idle workers
    still hold what their last task read loads them once it has stopped them;
    and when this machine's workers ran the families, each fit in
    ``Evaluation.fits`` is a :class:`Kept` handle in that file's folder, for
    :meth:`Evaluation.fetch_fits` (a fitted model can hold a hundred MB, which
    the caller then need not hold beside the workers).
    ``when_one_left`` is called once, when this machine's workers have a
    single task left: the other worker is idle from then on, and a caller can
    start what comes after the evaluation (training imports what it records
    with). It is given the process id of the worker that ran the task just
    finished (``None`` when not known): a worker exits after its task, and
    until it has, its memory still counts beside the last task's.
    """
    options = options or Options()
    progress = progress or (lambda message: None)
    keep_fits = not load_features and not cluster and isinstance(features, FeaturesFile)
    if cluster:
        features = _loaded(features)  # another machine cannot read this one's file
    summary = features.summary if isinstance(features, FeaturesFile) \
        else features.summary(options)
    # Training calls the batch models fit on (fit_calls: Options.max_fit_calls, the newest).
    report: dict[str, Any] = {key: summary[key] for key in (
        "events", "train_events", "test_events", "rejected", "fit_calls")}
    evaluation = Evaluation(report)
    if not summary["calls"]:
        for family in FAMILIES:
            report[family] = {"reason": "the log has no calls"}
        for name, task in (also or {}).items():
            evaluation.also[name] = task.result()[1] if isinstance(task, Future) else task()
        evaluation.features = _loaded(features) if load_features else features
        return evaluation
    # Longest first, so that the workers finish together; a family already running
    # (``running``) is waited for with the rest.
    running = dict(running or {}) if pool is not None and not cluster else {}
    order = [family for family in (ORDER if also or running else EVALUATE_ORDER)
             if family not in running]
    with cluster_backend(cluster) as where:
        jobs = len(order) if cluster else pool.workers if pool is not None \
            else n_jobs if n_jobs is not None else default_workers()
        progress(f"evaluating {', '.join([*running, *order])} on {where}"
                 + ("" if cluster else f" in {jobs} process{'es' if jobs > 1 else ''}"))
        if cluster:
            tasks = [delayed(_named)(name, task) for name, task in (also or {}).items()
                     if not isinstance(task, Future)]
            # A cluster's worker receives only the parts its family reads.
            tasks += [delayed(run_family)(family, features.only(READS[family],
                                                                _columns().get(family)), options)
                      for family in order]
            results = []
            for result in Parallel(n_jobs=jobs, return_as="generator_unordered")(tasks):
                results.append(result)
                _report_done(result, progress)  # each as it finishes
            for task in (also or {}).values():  # started here, beside the cluster's tasks
                if isinstance(task, Future):
                    results.append(task.result())
                    _report_done(results[-1], progress)
        elif pool is not None or jobs > 1:
            with _shared(features, options) as shared, \
                    (nullcontext(pool) if pool is not None else WorkerPool(jobs)) as workers:
                futures = [task if isinstance(task, Future) else start_task(workers, name, task)
                           for name, task in (also or {}).items()]
                futures += running.values()
                # The caller's own file outlives the evaluation: the fits can wait in it.
                task = _run_and_keep if keep_fits else run_family
                futures += [workers.submit(task, family, shared, options) for family in order]
                results = []
                for future in as_completed(futures):
                    results.append(future.result())
                    _report_done(results[-1], progress)
                    if when_one_left is not None and len(futures) - len(results) == 1:
                        when_one_left(getattr(results[-1], "pid", None))
        else:
            features = _loaded(features)
            results = []
            for name, task in (also or {}).items():
                results.append(task.result() if isinstance(task, Future) else _named(name, task))
                _report_done(results[-1], progress)
            for family in order:
                results.append(run_family(family, features, options))
                _report_done(results[-1], progress)
    evaluation.features = _loaded(features) if load_features else features
    for result in results:
        if not isinstance(result, FamilyRun):
            name, value, _ = result
            evaluation.also[name] = value
            continue
        report[result.family] = result.section
        if result.fit is not None:
            evaluation.fits[result.family] = result.fit
        if result.plot is not None:
            evaluation.plots[result.family] = result.plot
        if result.holdout_loss is not None:
            evaluation.losses[result.family] = result.holdout_loss[0]
    # The contract's order, whatever order the workers finished in.
    evaluation.report = {key: report[key] for key in report if key not in FAMILIES}
    evaluation.report.update({family: report[family] for family in FAMILIES})
    return evaluation


def evaluate_frame(frame: pd.DataFrame, *, rejected: int = 0, cache_size: int | None = None,
                   window_s: float = 60.0, capacity: float | None = None,
                   progress: Callable[[str], None] | None = None,
                   n_jobs: int | None = None, plots: bool = False,
                   pool: WorkerPool | None = None) -> Evaluation:
    """Evaluate every family on a time-ordered telemetry frame.

    The steps: features once (:class:`Features`), then per family its fit and
    its score. The families are independent (each seeds its own randomness),
    so they run in ``n_jobs`` worker processes (default: up to 2, one per core
    here), or in ``pool`` (this machine's workers, started and stopped by the
    caller); the report is the same whatever ``n_jobs``.
    """
    progress = progress or (lambda message: None)
    progress("history features")
    features = Features.of(frame, rejected)
    return evaluate_features(features, Options(cache_size, window_s, capacity, plots=plots),
                             progress=progress, n_jobs=n_jobs, pool=pool)


def evaluate_log(paths: str | Path | list, **options: Any) -> Evaluation:
    """Read ``paths`` and evaluate them (see :func:`evaluate_frame` for options).

    With more than one worker (``n_jobs``, default up to 2), the workers that
    evaluate the families are started first and read a large log too
    (:func:`load_log`'s ``pool``).
    """
    summary = ReadSummary()
    n_jobs = options.get("n_jobs")
    jobs = n_jobs if n_jobs is not None else default_workers()
    if jobs < 2:
        frame = load_log(paths, summary)
        return evaluate_frame(frame, rejected=summary.rejected, **options)
    with WorkerPool(jobs, preload=WORKER_MODULES) as pool:
        frame = load_log(paths, summary, pool=pool)
        return evaluate_frame(frame, rejected=summary.rejected, pool=pool, **options)


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(family, metric, "variant=value ...") rows for a readable table."""
    rows = []
    for family in FAMILIES:
        section = report.get(family)
        if not isinstance(section, dict):
            continue
        if "reason" in section:
            rows.append((family, "-", section["reason"]))
            continue
        for metric, value in section.items():
            if isinstance(value, dict) and value and all(
                isinstance(v, int | float) or v is None for v in value.values()
            ):
                cells = "  ".join(f"{k}={_fmt(v)}" for k, v in value.items())
                rows.append((family, metric, cells))
            elif isinstance(value, int | float):
                rows.append((family, metric, _fmt(value)))
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and not np.isnan(value):
        return f"{value:.4g}"
    return str(value)
