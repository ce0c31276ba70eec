"""In-process latency of every decision, after learning from simulated telemetry.

Usage::

    python bench/decisions.py [--events 50000] [--repeat 2000]

Each decision object learns from ``--events`` simulated records (not
timed), then each decision is called ``--repeat`` times on a realistic
request; the median and p99 microseconds per call are printed. ``select``
ranks 10 candidates; ``select, one call learned before each`` learns one call
of one of them (not timed) before each select, as a service does under a
steady stream of telemetry: the memo never answers, and the estimates of the
nine servers not observed since the last select are reused.
"""

from __future__ import annotations

import argparse
import itertools
import random
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

# bench/models.py is named like the project's ``models`` package: keep this folder
# off the import path so that ``import models`` finds the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from predictor.allocate import AllocateRequest, Allocator, PhaseSpec  # noqa: E402
from predictor.bottlenecks import BottleneckFinder  # noqa: E402
from predictor.context import ContextItem, ReduceRequest, reduce_context  # noqa: E402
from predictor.data.schema import parse_record  # noqa: E402
from predictor.data.simulator import Simulator  # noqa: E402
from predictor.plan import Operation, Planner, PlanRequest  # noqa: E402
from predictor.preload import Preloader, PreloadRequest  # noqa: E402
from predictor.recover import Recoverer, RecoverRequest  # noqa: E402
from predictor.risk import RiskAssessor, RiskRequest  # noqa: E402
from predictor.scale import Scaler, ScaleRequest  # noqa: E402
from predictor.select import Selector, SelectRequest  # noqa: E402
from predictor.validate import ValidateRequest, validate_workflow  # noqa: E402


def timings(fn: Callable[[], object], repeat: int,
            before: Callable[[], object] | None = None) -> tuple[float, float]:
    """Median and p99 microseconds of ``fn``; ``before`` runs (not timed) before each call."""
    samples = []
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return samples[len(samples) // 2], samples[min(len(samples) - 1, int(0.99 * len(samples)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    selector, recoverer, scaler = Selector(seed=0), Recoverer(seed=0), Scaler()
    assessor, preloader, planner = RiskAssessor(), Preloader(), Planner()
    allocator, finder = Allocator(), BottleneckFinder()
    raw_calls, last_ts, last_key = [], 0.0, "x"
    for raw in Simulator(seed=0).records(args.events):
        rec = parse_record(raw)
        last_ts = rec.epoch
        if rec.kind == "health":
            selector.observe_health(rec.server, reachable=rec.reachable,
                                    queue_depth=rec.queue_depth)
            assessor.observe_health(last_ts, rec.server, reachable=rec.reachable,
                                    cpu_pct=rec.cpu_pct, mem_pct=rec.mem_pct,
                                    queue_depth=rec.queue_depth)
            finder.observe_health(last_ts, rec.server, cpu_pct=rec.cpu_pct, mem_pct=rec.mem_pct)
            continue
        selector.observe_call(last_ts, rec.server, rec.task_type, latency_ms=rec.latency_ms,
                              success=rec.success, error_type=rec.error_type,
                              concurrency=rec.concurrency, cost_usd=rec.cost_usd)
        recoverer.observe(rec.error_type, rec.recovery, rec.recovered)
        scaler.observe_call(last_ts, rec.server)
        assessor.observe_call(last_ts, rec.server, rec.tool, success=bool(rec.success),
                              latency_ms=rec.latency_ms, concurrency=rec.concurrency)
        if rec.cache_key:
            preloader.observe(rec.cache_key, last_ts)
            last_key = rec.cache_key
        planner.observe(rec.tool, rec.latency_ms or 0.0)
        allocator.observe(rec.tool, latency_ms=rec.latency_ms,
                          tokens=(rec.input_tokens or 0) + (rec.output_tokens or 0),
                          mem_mb=rec.mem_mb, cpu_pct=rec.cpu_pct)
        finder.observe_call(last_ts, rec.server, rec.tool, latency_ms=rec.latency_ms)
        raw_calls.append(raw)
    servers = ["brave", "exa", "tavily", "serper", "github", "gitlab", "sourcegraph",
               "context7", "readthedocs", "deepwiki"]
    ops = [Operation(id=f"op{i}", tool="query", depends_on=[f"op{i - 1}"] if i % 3 else [])
           for i in range(30)]
    items = [ContextItem(id=str(i), text=raw_calls[i]["tool"] + " " + raw_calls[i]["server"]
                         + " " + str(raw_calls[i].get("cache_key"))) for i in range(40)]
    shuffler = random.Random(0)
    orders = [shuffler.sample(servers, len(servers)) for _ in range(4096)]
    turn = itertools.count()
    observed = itertools.count()

    def learn_one_call() -> None:
        n = next(observed)
        selector.observe_call(last_ts, servers[n % len(servers)], "search",
                              latency_ms=float(200 + 37 * n % 300), success=True)

    cases: dict[str, Callable[[], object] | tuple[Callable[[], object], Callable[[], object]]] = {
        "select (10 candidates)": lambda: selector.select(
            SelectRequest(task_type="search", candidates=servers, explore=0.1)),
        # Every request a different candidate order, so the memo never answers.
        "select, memo miss": lambda: selector.select(SelectRequest(
            task_type="search", candidates=orders[next(turn) % len(orders)], explore=0.1)),
        "select, one call learned before each": (
            learn_one_call, lambda: selector.select(
                SelectRequest(task_type="search", candidates=servers, explore=0.1))),
        "recover": lambda: recoverer.recover(RecoverRequest(
            error_type="timeout", server="exa", attempt=1, candidates=servers[:4])),
        "scale": lambda: scaler.scale(ScaleRequest(server="exa", current_replicas=3,
                                                   capacity_per_replica=2.0)),
        "risk": lambda: assessor.assess(RiskRequest(server="exa", tool="web_search",
                                                    ts=last_ts)),
        "preload": lambda: preloader.preload(PreloadRequest(recent=[last_key], budget_keys=5)),
        "plan (30 operations)": lambda: planner.plan(PlanRequest(operations=ops)),
        "allocate (4 phases)": lambda: allocator.allocate(AllocateRequest(phases=[
            PhaseSpec(phase=p, tool=t, calls=3) for p, t in
            (("plan", "resolve_library"), ("gather", "web_search"), ("read", "get_docs"),
             ("write", "write"))])),
        "reduce_context (40 items)": lambda: reduce_context(
            ReduceRequest(query="web_search exa", items=items, threshold=0.3)),
        "validate (20 calls)": lambda: validate_workflow(ValidateRequest(calls=raw_calls[:20])),
        "bottlenecks": lambda: finder.find(now=last_ts),
    }
    print(f"learned from {args.events} simulated records; {args.repeat} calls each")
    for name, case in cases.items():
        before, fn = case if isinstance(case, tuple) else (None, case)
        repeat = args.repeat if "bottlenecks" not in name else max(20, args.repeat // 20)
        median, p99 = timings(fn, repeat, before)
        print(f"{name:38s} median {median:9.0f} us   p99 {p99:9.0f} us")
    # ru_maxrss is in KiB on Linux; this process is the only one (fits use threads).
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"peak resident memory: {peak_mb:,} MB")
    print(f"command: python bench/decisions.py --events {args.events} --repeat {args.repeat}")


if __name__ == "__main__":
    main()
