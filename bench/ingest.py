"""Ingest throughput: JSONL parse + validation + durable append to the SQLite store.

Usage::

    python bench/ingest.py [--events 1000000] [--batch 10000]

Simulates ``--events`` records into a temporary JSONL file (not timed),
then times reading, validating and appending them to a fresh SQLite event
store in WAL mode with ``synchronous=FULL`` (one fsync per batch). Prints
records per second for parsing alone and for parse plus append, the median
of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from predictor.data.ingest import ingest_into
from predictor.data.readers import ReadSummary, read_records, read_sourced_records
from predictor.data.simulator import write_simulation
from predictor.data.store import SQLiteEventStore, append_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "sim.jsonl"
        write_simulation(log, args.events, args.seed)
        parse_rates, serial_rates, ingest_rates = [], [], []
        for run in range(args.repeat):
            start = time.perf_counter()
            n = sum(1 for _ in read_records(log, ReadSummary()))
            parse_rates.append(n / (time.perf_counter() - start))
            db = Path(tmp) / f"bench-{run}.db"
            start = time.perf_counter()
            with SQLiteEventStore(db) as store:
                stored = append_all(
                    store, read_sourced_records(log, ReadSummary()), batch=args.batch
                )
            serial_rates.append(stored / (time.perf_counter() - start))
            db = Path(tmp) / f"bench-parallel-{run}.db"
            start = time.perf_counter()
            with SQLiteEventStore(db) as store:
                summary = ingest_into(store, [log], batch=args.batch)
            ingest_rates.append(summary.accepted / (time.perf_counter() - start))
    print(f"events: {args.events}, batch: {args.batch}, runs: {args.repeat}")
    print(
        f"parse + validate:                              "
        f"{statistics.median(parse_rates):>10,.0f} records/s (median)"
    )
    print(
        f"parse + validate + append, one process:      "
        f"{statistics.median(serial_rates):>10,.0f} records/s (median)"
    )
    print(
        f"parse + validate + append, `predictor ingest`: "
        f"{statistics.median(ingest_rates):>10,.0f} records/s (median; parse in worker "
        "processes, append in the main one)"
    )
    print(f"command: python bench/ingest.py --events {args.events} --batch {args.batch}")


if __name__ == "__main__":
    main()
