"""Training cost: wall time and peak memory of `predictor train` by log size.

Usage::

    python bench/train.py [--events 100000 1000000] [--seed 0]

For each size, simulates a log (not timed), then runs ``predictor train`` on
it in a fresh process against a temporary SQLite MLflow store, and reports
the wall time and the peak resident memory of its whole process tree (the
command and its workers, sampled every 50 ms, as ``../shared/checks/cost``
measures it), and the growth factor between consecutive sizes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import _support  # noqa: F401 - first: it keeps bench/http.py off the import path
from _support import predictor_command, run_measured


def run(events: int, seed: int) -> tuple[float, float]:
    from predictor.data.simulator import write_simulation

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "sim.jsonl"
        write_simulation(log, events, seed)
        seconds, peak = run_measured([predictor_command(), "train", str(log), "--quiet",
                                      "--tracking-uri", f"sqlite:///{tmp}/mlflow.db"],
                                     cwd=Path(tmp))
    return seconds, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ["PYTHONWARNINGS"] = "ignore"  # the command's stderr is read only at its end
    previous = None
    for events in sorted(args.events):
        seconds, peak_mb = run(events, args.seed)
        growth = "" if previous is None else (
            f"  (x{events / previous[0]:.0f} events: x{seconds / previous[1]:.1f} time, "
            f"x{peak_mb / previous[2]:.1f} memory)")
        print(f"{events:>9,} events: {seconds:7.1f} s, peak {peak_mb:7.0f} MB (all processes)"
              f"{growth}")
        previous = (events, seconds, peak_mb)
    print(f"command: python bench/train.py --events {' '.join(map(str, args.events))}")


if __name__ == "__main__":
    main()
