"""Past one machine: replicas, the shared store, staleness and failover, on this machine.

Usage::

    python bench/replicas.py [--duration 10] [--events 20000] [--out FILE.json]
    python bench/replicas.py --only state          # published state sizes only
    python bench/replicas.py --only burst [--burst-events 200000]

Needs PostgreSQL (``PREDICTOR_PG_BASE``, default
``postgresql://postgres@127.0.0.1:5432``; a database is created and dropped)
and wrk (``apt-get install wrk``). It measures, in one run:

* **select throughput**: one ``--role all`` process (SQLite), then 1, 2 and 3
  replicas (``--role replica``, one learner beside them), each loaded by its
  own wrk (one thread, 32 connections); requests per second summed, and
  their ratio to the ``all`` process. This machine has 2 cores: replicas
  share them with each other and with wrk, so the ratio shows what one
  machine gives, not what more machines would;
* **ingestion**: durable appends of batches of 1,000 records into SQLite and
  into PostgreSQL (the store, in this process), records per second;
* **staleness**: from the acknowledgement of a batch posted to one replica to
  the moment another replica answers from a state that includes it (its
  ``/readyz`` state cursor), median of 10, with ``sync_interval_s`` 1;
* **failover**: the elected learner killed (SIGKILL), until the standby says
  ``leader: true``, and until a replica answers from records ingested after
  the kill;
* **state size**: the published engine state after learning 100 servers and
  1,000 cache keys, compressed and not, and its compression ratio (``--only
  state``: also 100 servers and 10,000 keys, 1,000 servers and 1,000 keys);
  and what publishing it costs: pickling it (the learner's thread), compressing
  and signing it (a thread of the learner's own), loading it (each replica),
  milliseconds, medians of 5;
* **burst** (``--only burst``): a learner and a replica; 10 clients post the
  records to the replica at once; acknowledged records/s, how far the learner
  falls behind the shared store, and when it has learned everything.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import _support  # noqa: F401 - first: it keeps bench/http.py off the import path
import httpx
import orjson
from _support import free_port, predictor_command, wrk

PG_BASE = os.environ.get("PREDICTOR_PG_BASE", "postgresql://postgres@127.0.0.1:5432")


def _serve(folder: Path, name: str, env: dict[str, str], role: str) -> tuple[subprocess.Popen,
                                                                          str]:
    port = free_port()
    with open(folder / f"{name}.log", "wb") as log:
        proc = subprocess.Popen([predictor_command(), "serve", "--role", role, "--port",
                                 str(port)], cwd=folder, env={**os.environ, **env},
                                stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{name} did not start: {(folder / f'{name}.log').read_text()[-800:]}")


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _select_script(folder: Path, records: list[dict]) -> Path:
    calls = [r for r in records if r.get("task_type")]
    task = calls[0]["task_type"]
    candidates = sorted({r["server"] for r in calls if r["task_type"] == task})[:5]
    script = folder / "select.lua"
    body = json.dumps({"task_type": task, "candidates": candidates})
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                      'wrk.headers["Content-Type"] = "application/json"\n')
    return script


def _parallel_wrk(bases: list[str], seconds: float, script: Path) -> float:
    """Requests per second summed over one wrk per base, run at once."""
    procs = [subprocess.Popen(["wrk", "-t1", "-c32", f"-d{seconds:g}s", "-s", str(script),
                               f"{base}/v1/select"], stdout=subprocess.PIPE, text=True)
             for base in bases]
    total = 0.0
    for proc in procs:
        out, _ = proc.communicate()
        total += float(out.split("Requests/sec:")[1].split()[0])
        if "Non-2xx" in out:
            raise RuntimeError(out)
    return total


def _cursor(base: str) -> int:
    state = httpx.get(f"{base}/readyz", timeout=10).json().get("state") or {}
    return int(state.get("cursor", 0))


def _wait(condition, limit: float = 60.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if condition():
            return time.perf_counter() - started
        time.sleep(0.02)
    raise RuntimeError("timed out")


def ingestion(records: list[dict], url: str, folder: Path) -> dict:
    from predictor.data.schema import parse_record
    from predictor.data.store import open_store

    parsed = [parse_record(r) for r in records]
    out = {}
    for name, target in (("sqlite", str(folder / "ingest.db")), ("postgresql", url)):
        with open_store(target) as store:
            started = time.perf_counter()
            for i in range(0, len(parsed), 1000):
                store.append_batch(parsed[i:i + 1000])
            out[f"{name}_records_per_s"] = round(len(parsed) / (time.perf_counter() - started))
    out["postgresql_over_sqlite"] = round(out["postgresql_records_per_s"]
                                          / out["sqlite_records_per_s"], 3)
    return out


def state_size(servers: int = 100, keys: int = 1000) -> dict:
    """The published state after ``servers`` servers and ``keys`` cache keys were learned."""
    import random

    from predictor.data.schema import parse_record
    from predictor.engine import Engine
    from predictor.serving.roles import seal_state, snapshot_state, unpack_state

    rng = random.Random(0)
    engine = Engine()
    n = max(20_000, 3 * keys)
    records = [parse_record({
        "ts": 1_767_225_600 + i * 0.5, "server": f"server-{i % servers}",
        "tool": f"tool-{i % 7}", "task_type": f"task-{i % 5}",
        "latency_ms": rng.lognormvariate(5, 0.5), "success": rng.random() > 0.05,
        "cache_key": f"key-{rng.randrange(keys)}", "input_tokens": rng.randrange(1000),
        "output_tokens": rng.randrange(1000), "concurrency": rng.randrange(10)})
        for i in range(n)]
    engine.learn(records, cursor=len(records))
    snapshot = snapshot_state(engine, publisher="bench")
    packed, raw = seal_state(*snapshot), len(snapshot[0])  # what pack_state returns
    return {"servers": servers, "keys": keys, "records_learned": len(records),
            "published_bytes": len(packed), "uncompressed_bytes": raw,
            "compression_ratio": round(raw / len(packed), 2),
            # What a publication costs: the learner's thread pickles, a thread of its
            # own compresses and signs, each replica loads (medians of 5).
            "snapshot_ms": _median_ms(lambda: snapshot_state(engine, publisher="bench")),
            "seal_ms": _median_ms(lambda: seal_state(*snapshot)),
            "load_ms": _median_ms(lambda: unpack_state(packed))}


def _median_ms(action, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1)


def burst(folder: Path, url: str, records: list[dict], clients: int = 10) -> dict:
    """A learner and a replica; ``records`` posted to the replica by ``clients`` at once.

    How fast they are acknowledged, how far the learner falls behind the shared
    store (its ``/readyz`` ``behind_records``, sampled every 0.5 s), and when it has
    learned them all.
    """
    import threading

    quiet = {"PREDICTOR_LOAD_CHAMPIONS": "false", "PREDICTOR_ONLINE_REGISTRY": "false",
             "PREDICTOR_LOG_LEVEL": "WARNING", "PREDICTOR_DB": url,
             "PREDICTOR_SYNC_INTERVAL_S": "1"}
    learner, lbase = _serve(folder, "burst-learner",
                            {**quiet, "PREDICTOR_STATE_DIR": str(folder / "b-l")}, "learner")
    replica, rbase = _serve(folder, "burst-replica",
                            {**quiet, "PREDICTOR_STATE_DIR": str(folder / "b-r")}, "replica")
    try:
        _wait(lambda: httpx.get(f"{lbase}/readyz").json().get("leader") is True, 60)
        bodies = [orjson.dumps(records[i:i + 1000]) for i in range(0, len(records), 1000)]
        behind: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                behind.append(httpx.get(f"{lbase}/readyz").json().get("behind_records", 0))
                time.sleep(0.5)

        def post(share: list[bytes]) -> None:
            with httpx.Client(base_url=rbase, timeout=120) as client:
                for body in share:
                    client.post("/v1/telemetry", content=body,
                                headers={"content-type": "application/json"}
                                ).raise_for_status()

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        threads = [threading.Thread(target=post, args=(bodies[k::clients],))
                   for k in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        acked = time.perf_counter() - started
        _wait(lambda: httpx.get(f"{lbase}/readyz").json().get("behind_records") == 0, 600)
        learned = time.perf_counter() - started
        done.set()
    finally:
        _stop([learner, replica])
    rate = len(records) / acked
    return {"records": len(records), "clients": clients, "acknowledged_s": round(acked, 2),
            "acknowledged_per_s": round(rate), "all_learned_s": round(learned, 2),
            "learned_per_s": round(len(records) / learned),
            "max_behind_records": max(behind, default=0),
            "max_behind_s_of_ingestion": round(max(behind, default=0) / rate, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--only", choices=["state", "burst"],
                        help="run one part: the published state sizes, or a 10-client burst "
                             "of --burst-events records into a replica beside a learner")
    parser.add_argument("--burst-events", type=int, default=200_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.only == "state":
        _report({"command": " ".join(["python", "bench/replicas.py", *sys.argv[1:]]),
                 "state": [state_size(s, k) for s, k in ((100, 1000), (100, 10_000),
                                                         (1000, 1000))]}, args.out)
        return
    import psycopg

    folder = Path(tempfile.mkdtemp(prefix="predictor-bench-replicas-"))
    subprocess.run([predictor_command(), "simulate", "--events", str(args.events), "--seed",
                    "7", "--out", str(folder / "sim.jsonl")], check=True, capture_output=True)
    records = [orjson.loads(line) for line in (folder / "sim.jsonl").read_bytes().splitlines()]
    script = _select_script(folder, records)
    name = f"predictor_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(f"{PG_BASE}/postgres", autocommit=True)
    admin.execute(f"CREATE DATABASE {name}")
    url = f"{PG_BASE}/{name}"
    quiet = {"PREDICTOR_LOAD_CHAMPIONS": "false", "PREDICTOR_ONLINE_REGISTRY": "false",
             "PREDICTOR_LOG_LEVEL": "WARNING"}
    report: dict = {"command": " ".join(["python", "bench/replicas.py", *sys.argv[1:]])}
    procs: list[subprocess.Popen] = []
    if args.only == "burst":
        try:
            subprocess.run([predictor_command(), "simulate", "--events", str(args.burst_events),
                            "--seed", "9", "--out", str(folder / "burst.jsonl")], check=True,
                           capture_output=True)
            burst_records = [orjson.loads(line)
                             for line in (folder / "burst.jsonl").read_bytes().splitlines()]
            report["burst"] = burst(folder, url, burst_records)
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.close()
        _report(report, args.out)
        return
    try:
        # One process doing it all, on SQLite: the baseline.
        alone, base = _serve(folder, "all", {**quiet, "PREDICTOR_DB": str(folder / "all.db"),
                                             "PREDICTOR_STATE_DIR": str(folder / "s-all")},
                             "all")
        httpx.post(f"{base}/v1/telemetry", content=orjson.dumps(records[:5000]), timeout=120,
                   headers={"content-type": "application/json"}).raise_for_status()
        time.sleep(2)
        baseline = wrk(f"{base}/v1/select", args.duration, 32, script)["rps"]
        _stop([alone])
        # A learner, a standby and up to three replicas on PostgreSQL.
        shared = {**quiet, "PREDICTOR_DB": url, "PREDICTOR_SYNC_INTERVAL_S": "1"}
        learner, learner_base = _serve(folder, "learner",
                                       {**shared, "PREDICTOR_STATE_DIR": str(folder / "s-l")},
                                       "learner")
        procs.append(learner)
        standby, standby_base = _serve(folder, "standby",
                                       {**shared, "PREDICTOR_STATE_DIR": str(folder / "s-s")},
                                       "learner")
        procs.append(standby)
        replicas = []
        for k in range(3):
            proc, rbase = _serve(folder, f"replica{k}",
                                 {**shared, "PREDICTOR_STATE_DIR": str(folder / f"s-r{k}")},
                                 "replica")
            procs.append(proc)
            replicas.append(rbase)
        httpx.post(f"{replicas[0]}/v1/telemetry", content=orjson.dumps(records[:5000]),
                   timeout=120, headers={"content-type": "application/json"}
                   ).raise_for_status()
        _wait(lambda: all(_cursor(r) >= 5000 for r in replicas), 120)
        throughput = {"all_process_rps": round(baseline)}
        for n in (1, 2, 3):
            rps = _parallel_wrk(replicas[:n], args.duration, script)
            throughput[f"replicas_{n}_rps"] = round(rps)
            throughput[f"replicas_{n}_ratio"] = round(rps / baseline, 3)
        report["select_throughput"] = throughput
        # Staleness: ack at replica 0, until replica 1 answers from a state holding it.
        lags = []
        at = 5000
        for k in range(10):
            batch = records[at:at + 200]
            reply = httpx.post(f"{replicas[0]}/v1/telemetry", content=orjson.dumps(batch),
                               headers={"content-type": "application/json"}, timeout=60)
            reply.raise_for_status()
            at += len(batch)
            last = at
            lags.append(_wait(lambda last=last: _cursor(replicas[1]) >= last, 60))
            time.sleep(0.3 * (k % 3))  # acks at different points of the sync cycle
        report["staleness_s"] = {"median": round(statistics.median(lags), 3),
                                 "max": round(max(lags), 3), "sync_interval_s": 1}
        # Failover: kill the elected learner.
        leader, other_base = (learner, standby_base) \
            if httpx.get(f"{learner_base}/readyz").json().get("leader") \
            else (standby, learner_base)
        killed = time.perf_counter()
        os.kill(leader.pid, signal.SIGKILL)
        _wait(lambda: httpx.get(f"{other_base}/readyz").json().get("leader") is True, 120)
        elected = time.perf_counter() - killed
        batch = records[at:at + 500]
        httpx.post(f"{replicas[1]}/v1/telemetry", content=orjson.dumps(batch),
                   headers={"content-type": "application/json"}, timeout=60).raise_for_status()
        at += len(batch)
        _wait(lambda: _cursor(replicas[2]) >= at, 120)
        report["failover_s"] = {"standby_elected": round(elected, 3),
                                "replicas_reflect_new_records": round(
                                    time.perf_counter() - killed, 3)}
    finally:
        _stop(procs)
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    name2 = f"predictor_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE DATABASE {name2}")
    try:
        report["ingestion"] = ingestion(records, f"{PG_BASE}/{name2}", folder)
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name2} WITH (FORCE)")
        admin.close()
    report["state"] = state_size()
    report["peak_rss_mb"] = {
        "bench": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "largest_child": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)}
    _report(report, args.out)


def _report(report: dict, out: Path | None) -> None:
    print(json.dumps(report, indent=2))
    if out:
        out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
