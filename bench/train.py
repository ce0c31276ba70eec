"""Training cost: wall time and peak memory of `predictor train` by log size.

Usage::

    python bench/train.py [--events 100000 1000000] [--seed 0]

For each size, simulates a log (not timed), then runs ``predictor train`` on
it in a fresh process against a temporary SQLite MLflow store, and reports
the wall time and the peak resident memory of that process, and the growth
factor between consecutive sizes.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(events: int, seed: int) -> tuple[float, float]:
    from predictor.data.simulator import write_simulation

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "sim.jsonl"
        write_simulation(log, events, seed)
        predictor = shutil.which("predictor") or str(Path(sys.executable).with_name("predictor"))
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        subprocess.run([predictor, "train", str(log), "--quiet",
                        "--tracking-uri", f"sqlite:///{tmp}/mlflow.db"],
                       check=True, cwd=tmp, stdout=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
        seconds = time.perf_counter() - start
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: sizes must grow run to run.
    return seconds, max(peak_kb, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    previous = None
    for events in sorted(args.events):
        seconds, peak_mb = run(events, args.seed)
        growth = "" if previous is None else (
            f"  (x{events / previous[0]:.0f} events: x{seconds / previous[1]:.1f} time, "
            f"x{peak_mb / previous[2]:.1f} memory)")
        print(f"{events:>9,} events: {seconds:7.1f} s, peak {peak_mb:7.0f} MB{growth}")
        previous = (events, seconds, peak_mb)
    print(f"command: python bench/train.py --events {' '.join(map(str, args.events))}")


if __name__ == "__main__":
    main()
