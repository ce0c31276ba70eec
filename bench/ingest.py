"""Ingest throughput: ``predictor ingest`` against a plain JSON pass over the same log.

Usage::

    python bench/ingest.py [--events 300000] [--repeat 5] [--seed 21]

Simulates ``--events`` records into a JSONL file (not timed). Then,
``--repeat`` times, in this order:

* the reference: one ``json.loads`` per line in this process (one thread of
  plain Python, so it slows with the machine as the project does; the ratio
  to it is what compares across runs on a shared, noisy machine);
* ``predictor ingest LOG --db FRESH.db`` as a process of its own, start to
  exit (durable: one fsynced transaction per 10,000 records), with the peak
  resident memory of it and its worker processes;
* in this process, the stages apart: the fast line check
  (:func:`predictor.data.fast_validation.quick_row`), the pydantic parse it
  spares (:func:`predictor.data.schema.parse_record` after ``orjson``), and
  appending the checked rows alone to a fresh SQLite store.

Prints medians, as JSON with the command.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import _support  # first: it keeps bench/http.py off the import path
import orjson

from predictor.data.fast_validation import quick_row
from predictor.data.schema import parse_record
from predictor.data.simulator import write_simulation
from predictor.data.store import open_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {name: [] for name in (
        "json_pass_s", "ingest_s", "ingest_to_json_pass", "ingest_peak_mb", "quick_row_us",
        "pydantic_us", "append_us")}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log = folder / "sim.jsonl"
        write_simulation(log, args.events, args.seed)
        lines = [line.strip() for line in log.read_bytes().splitlines() if line.strip()]
        n = len(lines)
        for run in range(args.repeat):
            started = time.perf_counter()
            with open(log) as handle:
                for line in handle:
                    json.loads(line)
            reference = time.perf_counter() - started
            seconds, peak = _support.run_measured(
                [_support.predictor_command(), "ingest", str(log), "--db",
                 str(folder / f"ingest-{run}.db")], cwd=folder)
            started = time.perf_counter()
            rows = [quick_row(line) for line in lines]
            checked = time.perf_counter() - started
            started = time.perf_counter()
            for line in lines:
                parse_record(orjson.loads(line))
            parsed = time.perf_counter() - started
            started = time.perf_counter()
            with open_store(folder / f"append-{run}.db", bulk=True) as store:
                for i in range(0, n, 10_000):
                    store.append_rows(rows[i:i + 10_000])
            appended = time.perf_counter() - started
            for name, value in (("json_pass_s", reference), ("ingest_s", seconds),
                                ("ingest_to_json_pass", seconds / reference),
                                ("ingest_peak_mb", peak / 2**20),
                                ("quick_row_us", checked / n * 1e6),
                                ("pydantic_us", parsed / n * 1e6),
                                ("append_us", appended / n * 1e6)):
                runs[name].append(value)
    median = {name: round(statistics.median(values), 3) for name, values in runs.items()}
    report = {
        "command": f"python bench/ingest.py --events {args.events} --repeat {args.repeat} "
                   f"--seed {args.seed}",
        "records": n,
        "median": median,
        "ingest_records_per_s": round(n / median["ingest_s"]),
        "runs": {name: [round(v, 3) for v in values] for name, values in runs.items()},
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
