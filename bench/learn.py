"""The online learner's throughput: ``Engine.learn``, whole and plug-in by plug-in.

Usage::

    python bench/learn.py [--events 100000] [--repeat 3] [--seed 0] [--out FILE.json]

Simulates ``--events`` records (not timed) and reads them into records once.
Then, ``--repeat`` times: parses and validates the log again (the reference
workload: the ratio of learning to parsing is what compares across runs on
a shared, noisy machine), teaches a fresh :class:`predictor.engine.Engine`
every record, teaches another one the first ``--one-at-a-time`` records
with one ``Engine.learn`` call each (as a gateway or a client posting
single records feeds it) and the same records in one call (what learning
them as a run saves), and teaches each plug-in
alone (its ``learn_call`` and ``learn_health``, or its ``learn_run`` a run at a time as
the engine does) to see where the learner's
time goes. Prints medians in
records per second and the peak resident memory of this process (it is the
only one).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import _support  # noqa: F401 - first: it keeps bench/http.py off the import path

from predictor.data.readers import ReadSummary, read_records
from predictor.data.schema import CallRecord
from predictor.data.simulator import write_simulation
from predictor.engine import Engine
from predictor.plugin import DecisionPlugin


def _plugin_rate(name: str, records: list) -> float:
    plugin = Engine().plugins[name]
    if getattr(plugin, "learn_run", None) is not None:  # as the engine teaches it: by runs
        start = time.perf_counter()
        for at in range(0, len(records), Engine.RUN):
            plugin.learn_run(records[at:at + Engine.RUN])
        return len(records) / (time.perf_counter() - start)
    on_call = plugin.learn_call if type(plugin).learn_call is not DecisionPlugin.learn_call \
        else None
    on_health = plugin.learn_health \
        if type(plugin).learn_health is not DecisionPlugin.learn_health else None
    start = time.perf_counter()
    for record in records:
        learn = on_call if isinstance(record, CallRecord) else on_health
        if learn is not None:
            learn(record)
    return len(records) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one-at-a-time", type=int, default=10_000,
                        help="records taught one per Engine.learn call (0: skip)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "sim.jsonl"
        write_simulation(log, args.events, args.seed)
        records = list(read_records(log, ReadSummary()))
        parse, engine, single, together = [], [], [], []
        alone = records[:args.one_at_a_time]
        plugins: dict[str, list[float]] = {name: [] for name in Engine().plugins}
        for _ in range(args.repeat):
            start = time.perf_counter()
            parsed = sum(1 for _ in read_records(log, ReadSummary()))
            parse.append(parsed / (time.perf_counter() - start))
            start = time.perf_counter()
            Engine().learn(records)
            engine.append(len(records) / (time.perf_counter() - start))
            if alone:
                start = time.perf_counter()
                Engine().learn(alone)
                together.append(len(alone) / (time.perf_counter() - start))
                learner = Engine()
                start = time.perf_counter()
                for record in alone:
                    learner.learn((record,))
                single.append(len(alone) / (time.perf_counter() - start))
            for name, rates in plugins.items():
                rates.append(_plugin_rate(name, records))
    median = {name: round(statistics.median(rates)) for name, rates in plugins.items()}
    report = {
        "command": f"python bench/learn.py --events {args.events} --repeat {args.repeat} "
                   f"--seed {args.seed} --one-at-a-time {args.one_at_a_time}",
        "records": len(records),
        "parse_records_per_s": round(statistics.median(parse)),
        "learn_records_per_s": round(statistics.median(engine)),
        "learn_to_parse": round(statistics.median(engine) / statistics.median(parse), 3),
        # The first --one-at-a-time records, one Engine.learn call each, and in one call.
        "one_at_a_time_records_per_s": round(statistics.median(single)) if single else None,
        "same_records_in_one_call_per_s": round(statistics.median(together))
        if together else None,
        # Each plug-in alone, slowest first: its share of the learner's time is about
        # (1 / its rate) / (1 / the engine's rate).
        "plugin_records_per_s": dict(sorted(median.items(), key=lambda item: item[1])),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
