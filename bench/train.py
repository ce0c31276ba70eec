"""Training cost: wall time and peak memory of `predictor train` by log size.

Usage::

    python bench/train.py [--events 100000 1000000] [--repeat 1] [--seed 0] [--out FILE.json]
                          [--max-events N] [--cluster local|tcp://...]

For each size, simulates a log (not timed), then ``--repeat`` times: one
plain ``json.loads`` pass over the log (the reference workload, measured in
the same minutes: one thread of plain Python slows with the machine's load
as the project does, so the ratio compares across runs on a shared, noisy
machine), then ``predictor train`` on it in a fresh process against a new
SQLite MLflow store, with the wall time and the peak resident memory of its
whole process tree (the command and its workers, sampled every 50 ms, as
``../shared/checks/cost`` measures it). It reports the medians over the
repeats, and the growth factor between consecutive sizes.

``--max-events`` and ``--cluster`` are passed on to ``predictor train``: with
a window, the memory should stay flat while the log grows (the families read
the newest N records; the online state learns them all, one partition at a
time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _support  # noqa: F401 - first: it keeps bench/http.py off the import path
from _support import predictor_command, run_measured


def json_pass(path: Path) -> float:
    """Seconds of one ``json.loads`` of every line of ``path``."""
    started = time.perf_counter()
    with path.open() as lines:
        for line in lines:
            json.loads(line)
    return time.perf_counter() - started


def run(events: int, seed: int, repeat: int, extra: list[str]) -> dict[str, float]:
    """Medians over ``repeat`` runs of: the reference pass, the training, its peak memory."""
    from predictor.data.simulator import write_simulation

    times, peaks, references = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "sim.jsonl"
        write_simulation(log, events, seed)
        for k in range(repeat):
            references.append(json_pass(log))
            seconds, peak = run_measured(
                [predictor_command(), "train", str(log), "--quiet",
                 "--tracking-uri", f"sqlite:///{tmp}/mlflow-{k}.db", *extra], cwd=Path(tmp))
            times.append(seconds)
            peaks.append(peak / 2**20)
    return {"events": events, "seconds": round(statistics.median(times), 1),
            "peak_mb": round(statistics.median(peaks)),
            "json_pass_s": round(statistics.median(references), 2),
            "to_json_pass": round(statistics.median(
                t / r for t, r in zip(times, references, strict=True)), 1),
            "runs_s": [round(t, 1) for t in times], "runs_peak_mb": [round(p) for p in peaks]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (medians)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--max-events", type=int,
                        help="predictor train --max-events: the window the families read")
    parser.add_argument("--cluster", help="predictor train --cluster: where the families run")
    args = parser.parse_args()
    extra = [*(["--max-events", str(args.max_events)] if args.max_events else []),
             *(["--cluster", args.cluster] if args.cluster else [])]
    os.environ["PYTHONWARNINGS"] = "ignore"  # the command's stderr is read only at its end
    sizes, previous = [], None
    for events in sorted(args.events):
        size = run(events, args.seed, args.repeat, extra)
        growth = "" if previous is None else (
            f"  (x{events / previous['events']:.0f} events: "
            f"x{size['seconds'] / previous['seconds']:.1f} time, "
            f"x{size['peak_mb'] / previous['peak_mb']:.1f} memory)")
        print(f"{events:>9,} events: {size['seconds']:7.1f} s = {size['to_json_pass']:5.1f}x a "
              f"json.loads pass ({size['json_pass_s']:.2f} s), peak {size['peak_mb']:7,} MB "
              f"(all processes){growth}")
        sizes.append(size)
        previous = size
    command = " ".join(["python", "bench/train.py", *sys.argv[1:]])
    print(f"medians of {args.repeat} run{'s' if args.repeat > 1 else ''}; command: {command}")
    if args.out:
        args.out.write_text(json.dumps({"command": command, "repeat": args.repeat,
                                        "sizes": sizes}, indent=2))


if __name__ == "__main__":
    main()
