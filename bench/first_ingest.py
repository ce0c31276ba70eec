"""Decisions asked while a fresh service learns its first batch.

Usage::

    python bench/first_ingest.py [--runs 3] [--seconds 3] [--records 100]

Each run starts ``predictor serve`` on an empty store, times how long it
takes to answer ``/healthz``, then asks ``/v1/select`` over and over, one
request at a time, for ``--seconds``; half a second in, another thread posts
one batch of ``--records`` calls to ``/v1/telemetry``. The first records a
process learns load numba and the online models' compiled loops, holding
the interpreter; this shows whether a decision waits behind that. Reports,
per run, the start-up time, the median and the largest ``/v1/select``
latency (ms) and when the largest happened (s after the first request), as
JSON with the command.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _support  # noqa: F401 - first: it keeps bench/http.py off the import path
import httpx
from _support import free_port, predictor_command


def one_run(seconds: float, records: int) -> dict[str, float]:
    """One fresh service: start-up seconds and the selects' latencies around a first ingest."""
    folder = Path(tempfile.mkdtemp(prefix="predictor-bench-first-ingest-"))
    port = free_port()
    env = {**os.environ, "PREDICTOR_STATE_DIR": str(folder / "state"),
           "PREDICTOR_LOAD_CHAMPIONS": "false", "PREDICTOR_ONLINE_REGISTRY": "false",
           "PREDICTOR_LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    service = subprocess.Popen(
        [predictor_command(), "serve", "--db", str(folder / "p.db"), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            while True:
                try:
                    client.get("/healthz")
                    break
                except httpx.HTTPError:
                    if service.poll() is not None:
                        raise RuntimeError("predictor serve exited") from None
                    time.sleep(0.02)
            start_s = time.perf_counter() - started
            batch = [{"ts": 1.7e9 + i, "server": "ab"[i % 2], "tool": "query",
                      "task_type": "search", "latency_ms": 100.0 + i, "success": i % 7 != 0,
                      "concurrency": 2, "attempt": 1} for i in range(records)]
            acknowledged: list[int] = []

            def ingest() -> None:
                time.sleep(0.5)
                acknowledged.append(httpx.post(f"{base}/v1/telemetry", json=batch,
                                               timeout=30).status_code)

            poster = threading.Thread(target=ingest)
            first = time.perf_counter()
            poster.start()
            latencies: list[tuple[float, float]] = []
            body = {"task_type": "search", "candidates": ["a", "b"]}
            while time.perf_counter() - first < seconds:
                asked = time.perf_counter()
                client.post("/v1/select", json=body).raise_for_status()
                latencies.append(((time.perf_counter() - asked) * 1000, asked - first))
            poster.join()
    finally:
        service.terminate()
        service.wait(timeout=60)
    if acknowledged != [200]:
        raise RuntimeError(f"the batch was not acknowledged: {acknowledged}")
    slowest = max(latencies)
    return {"start_s": round(start_s, 2), "selects": len(latencies),
            "median_ms": round(statistics.median(ms for ms, _ in latencies), 2),
            "max_ms": round(slowest[0], 2), "max_at_s": round(slowest[1], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--records", type=int, default=100)
    args = parser.parse_args()
    runs = [one_run(args.seconds, args.records) for _ in range(args.runs)]
    print(json.dumps({"command": " ".join(["python", "bench/first_ingest.py", *sys.argv[1:]]),
                      "runs": runs,
                      "median_of_max_ms": statistics.median(r["max_ms"] for r in runs),
                      "median_start_s": statistics.median(r["start_s"] for r in runs)},
                     indent=2))


if __name__ == "__main__":
    main()
