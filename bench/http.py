"""HTTP throughput and latency of ``/v1/select`` against ``/healthz`` of one app; ingestion.

Usage::

    python bench/http.py [--rounds 3] [--duration 8] [--connections 16] [--learner-process]
                         [--batches 100] [--ingest-clients 2] [--ingest-rate 0] [--out FILE.json]

Starts ``predictor serve`` on a free loopback port in a temporary folder
(its own store, no registry), teaches it a 3,000-record simulation through
``POST /v1/telemetry``, then drives ``/healthz`` and ``/v1/select`` (10
candidates, the default exploration) with wrk (one thread,
``--connections`` connections, ``--duration`` seconds), alternating the two
for ``--rounds`` rounds. The machine is shared and noisy, so the figures
are the medians over rounds, and what matters is the ratio of select to
healthz measured in the same run.

Ingestion: ``--batches`` batches of 1,000 simulated records, encoded
beforehand, posted by ``--ingest-clients`` concurrent clients (httpx threads
in this process) honouring ``429 Retry-After``, as fast as acknowledged or
at ``--ingest-rate`` records per second offered; it reports records per
second acknowledged (durable) and the ratio of that time to one plain
``json.loads`` pass over the same bodies in this process (the reference
measured in the same run), how many the online models learned while
the burst lasted (the learner must not starve), how far behind the store
the learner was when it ended and at most while it lasted (read twice a
second; in seconds of ingestion), and how long
until the online models had learned them all.

Memory: the peak resident memory of the service's process tree and of this
process (the clients), sampled every 50 ms over the whole run.

``--learner-process``: the same against ``predictor serve --role replica``
beside ``--role learner`` on one SQLite store (two processes: the learner
learns on a core of its own and publishes its state every second; the
replica ingests and answers from the newest state), the learner's lag read
from its ``/readyz``; and what the replica answers from (its ``/readyz``):
the stored records its state lacks when the burst ends, that state's age,
and how long until it answers from a state that holds every record.

Needs wrk (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _support
import httpx
import orjson
from _support import PeakRss, free_port, start_server, wrk


def behind(client: httpx.Client) -> int:
    """Records stored and not learned yet: the service's queue, or the elected learner's lag
    behind the shared store (``--learner-process``)."""
    state = client.get("/readyz").json()
    if state.get("role") == "learner":
        return state["behind_records"] if state.get("leader") else 1
    return state.get("pending_records", 1)


def wait_learned(client: httpx.Client, timeout: float = 600.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if behind(client) == 0:
            return time.perf_counter() - started
        time.sleep(0.05)
    raise RuntimeError("the online models did not catch up")


def replica_behind(base: str, learner: str) -> tuple[int, float]:
    """Records the replica's state lacks of the shared store, and that state's age (s)."""
    state = httpx.get(f"{learner}/readyz", timeout=60).json()
    last = state.get("learned_cursor", 0) + state.get("behind_records", 0)
    loaded = httpx.get(f"{base}/readyz", timeout=60).json().get("state") or {}
    return (max(0, last - loaded.get("cursor", 0)),
            time.time() - loaded.get("created", time.time()))


def wait_published(base: str, learner: str, timeout: float = 600.0) -> float:
    """Seconds until the replica answers from a state holding every stored record."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if replica_behind(base, learner)[0] == 0:
            return time.perf_counter() - started
        time.sleep(0.05)
    raise RuntimeError("the replica did not load a state with every record")


def simulate(folder: Path, events: int, seed: int) -> list[dict]:
    path = folder / f"sim-{events}-{seed}.jsonl"
    predictor = _support.predictor_command()
    subprocess.run([predictor, "simulate", "--events", str(events), "--seed", str(seed),
                    "--out", str(path)], check=True)
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def wait_loaded(client: httpx.Client, cursor: int, timeout: float = 120.0) -> None:
    """Wait until the replica at ``client`` answers from a state learned up to ``cursor``."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if ((client.get("/readyz").json().get("state") or {}).get("cursor") or 0) >= cursor:
            return
        time.sleep(0.05)
    raise RuntimeError("the replica did not load the learner's state")


def ingest(base: str, records: list[dict], batch: int, clients: int,
           learner: str | None = None, rate: float = 0.0) -> dict[str, float]:
    """Post ``records`` in batches from ``clients`` threads; bodies are encoded beforehand.

    ``learner``: the base URL of the process that learns, when it is not ``base``.
    ``rate``: records per second offered (batch ``j`` is posted no earlier than
    ``j * batch / rate`` seconds after the start); 0 posts as fast as acknowledged.
    While the burst lasts, the learner's lag is read twice a second.
    """
    bodies = [orjson.dumps(records[i:i + batch]) for i in range(0, len(records), batch)]
    # The reference, measured in the same minutes: one plain json.loads pass over the bodies.
    started = time.perf_counter()
    for body in bodies:
        json.loads(body)
    json_pass = time.perf_counter() - started
    throttled = [0]

    def post(client: httpx.Client, body: bytes) -> None:
        while True:
            reply = client.post("/v1/telemetry", content=body,
                                headers={"content-type": "application/json"})
            if reply.status_code != 429:
                reply.raise_for_status()
                return
            throttled[0] += 1
            time.sleep(float(reply.headers.get("retry-after", "1")))

    def worker(first: int) -> None:
        with httpx.Client(base_url=base, timeout=120) as client:
            for j in range(first, len(bodies), clients):
                if rate:
                    time.sleep(max(0.0, started + j * batch / rate - time.perf_counter()))
                post(client, bodies[j])

    lags: list[int] = []  # records stored and not learned, twice a second during the burst
    done = threading.Event()

    def watch() -> None:
        with httpx.Client(base_url=learner or base, timeout=60) as client:
            while not done.wait(0.5):
                lags.append(behind(client))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    watcher = threading.Thread(target=watch)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    watcher.start()
    for thread in threads:
        thread.join()
    acknowledged = time.perf_counter() - started
    done.set()
    watcher.join()
    published: dict[str, float] = {}
    if learner is not None:  # what the replica answers from, when the burst ended
        behind_records, age = replica_behind(base, learner)
        published = {"replica_behind_records_at_burst_end": behind_records,
                     "replica_state_age_s_at_burst_end": round(age, 2)}
    with httpx.Client(base_url=learner or base, timeout=60) as client:
        # How far the learner was behind the store when the burst ended.
        pending = behind(client)
        learned = acknowledged + wait_learned(client)
    if learner is not None:
        # From the burst's start, as all_learned_s (the replica cannot be ahead of it).
        published["all_published_s"] = round(learned + wait_published(base, learner), 3)
    ack_rate = len(records) / acknowledged
    return {"records": len(records), "batch": batch, "clients": clients,
            "acknowledged_s": round(acknowledged, 3),
            "records_per_s": round(ack_rate),
            "json_pass_s": round(json_pass, 3),
            "acknowledged_to_json_pass": round(acknowledged / json_pass, 2),
            "throttled_batches": throttled[0], "all_learned_s": round(learned, 3),
            "learned_per_s": round(len(records) / learned),
            "learned_during_burst": len(records) - pending,
            "learned_per_s_during_burst": round((len(records) - pending) / acknowledged),
            "learner_lag_s_at_burst_end": round(pending / ack_rate, 2),
            "learner_lag_s_max_during_burst": round(max(lags, default=pending) / ack_rate, 2),
            "offered_records_per_s": rate or None, **published}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--batches", type=int, default=100, help="ingestion batches of 1,000")
    parser.add_argument("--ingest-clients", type=int, default=2,
                        help="concurrent ingestion clients")
    parser.add_argument("--ingest-rate", type=float, default=0.0,
                        help="records/s the ingestion clients offer (0: as fast as acknowledged)")
    parser.add_argument("--learner-process", action="store_true",
                        help="a learner and a replica on one SQLite store (two processes): "
                             "the routes and the ingestion go to the replica")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not installed (apt-get install wrk)")
    folder = Path(tempfile.mkdtemp(prefix="predictor-bench-http-"))
    port = free_port()
    roots = {"bench": os.getpid()}
    learner = learner_proc = None
    if args.learner_process:
        shared = {"PREDICTOR_DB": str(folder / "shared.db"), "PREDICTOR_SYNC_INTERVAL_S": "1"}
        learner_port = free_port()
        learner_proc = start_server(folder, learner_port, {
            **shared, "PREDICTOR_ROLE": "learner", "PREDICTOR_STATE_DIR": str(folder / "l")})
        learner, roots["learner"] = f"http://127.0.0.1:{learner_port}", learner_proc.pid
        proc = start_server(folder, port, {**shared, "PREDICTOR_ROLE": "replica",
                                           "PREDICTOR_STATE_DIR": str(folder / "r")})
    else:
        proc = start_server(folder, port)
    roots["server"] = proc.pid
    base = f"http://127.0.0.1:{port}"
    peak = PeakRss(roots)
    try:
        with peak, httpx.Client(base_url=base, timeout=60) as client:
            warm = simulate(folder, 3000, 9)
            client.post("/v1/telemetry", content=orjson.dumps(warm),
                        headers={"content-type": "application/json"}).raise_for_status()
            wait_learned(client)
            if learner is not None:  # learned, then published and loaded by the replica
                with httpx.Client(base_url=learner, timeout=60) as learning:
                    wait_learned(learning)
                    learned_to = learning.get("/readyz").json()["learned_cursor"]
                wait_loaded(client, learned_to)
            servers = sorted({r["server"] for r in warm})[:10]
            task = next(r["task_type"] for r in warm if r.get("task_type"))
            select = {"task_type": task, "candidates": servers}
            answer = client.post("/v1/select", json=select).json()
            assert len(answer["ranking"]) == len(servers) and answer["source"] == "online"
            script = folder / "select.lua"
            script.write_text('wrk.method = "POST"\n'
                              f"wrk.body = {json.dumps(json.dumps(select))}\n"
                              'wrk.headers["Content-Type"] = "application/json"\n')
            runs: dict[str, list[dict[str, float]]] = {"healthz": [], "select": []}
            for _ in range(args.rounds):
                runs["healthz"].append(wrk(f"{base}/healthz", args.duration,
                                           args.connections, None))
                runs["select"].append(wrk(f"{base}/v1/select", args.duration,
                                          args.connections, script))
            medians = {route: {k: round(statistics.median(r[k] for r in rs), 3)
                               for k in ("rps", "p50_ms", "p99_ms")}
                       for route, rs in runs.items()}
            stream = simulate(folder, args.batches * 1000, 21)
            ingestion = ingest(base, stream, 1000, args.ingest_clients, learner,
                               args.ingest_rate)
    finally:
        for running in (proc, learner_proc):
            if running is not None:
                running.terminate()
                running.wait(timeout=60)
    h, s = medians["healthz"], medians["select"]
    report = {
        "command": " ".join(["python", "bench/http.py", *sys.argv[1:]]),
        "wrk": {"threads": 1, "connections": args.connections, "seconds": args.duration,
                "rounds": args.rounds},
        "learner_process": args.learner_process,
        "select_candidates": len(servers),
        "healthz": h, "select": s,
        "ratio": {"throughput": round(s["rps"] / h["rps"], 3),
                  "p50": round(s["p50_ms"] / h["p50_ms"], 3),
                  "p99": round(s["p99_ms"] / h["p99_ms"], 3)},
        "ingestion": ingestion,
        # The service and its children; this process (wrk's client threads, the ingest clients).
        "peak_rss_mb": peak.mb,
        "runs": runs,
    }
    print(f"{'route':<12}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for route in ("healthz", "select"):
        m = medians[route]
        print(f"{route:<12}{m['rps']:>10.0f}{m['p50_ms']:>10.3f}{m['p99_ms']:>10.3f}")
    r = report["ratio"]
    print(f"select/healthz: throughput {r['throughput']:.2f}, p50 {r['p50']:.2f}, "
          f"p99 {r['p99']:.2f}")
    print(f"ingestion: {ingestion['records_per_s']:,} records/s acknowledged "
          f"(batches of 1,000, {ingestion['clients']} clients, "
          f"{ingestion['throttled_batches']} throttled); all learned after "
          f"{ingestion['all_learned_s']} s ({ingestion['learned_per_s']:,} records/s)")
    print(f"learned during the burst: {ingestion['learned_per_s_during_burst']:,} records/s; "
          f"learner {ingestion['learner_lag_s_at_burst_end']} s of ingestion behind at its end "
          f"({ingestion['learner_lag_s_max_during_burst']} s at most during it)")
    print("peak resident memory (MB): " + ", ".join(
        f"{name} {size:,}" for name, size in peak.mb.items()))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
