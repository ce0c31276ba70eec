"""Memory soak: does the service's RSS reach a plateau under a steady mixed load?

Usage::

    python bench/soak.py [--minutes 30] [--rate 80] [--out FILE.json]

Starts ``predictor serve`` on a free loopback port in a temporary folder
(its own store, no registry), then for ``--minutes`` sends ``--rate``
requests per second from one client thread per kind, in fixed shares:
ingestion (batches of 20 simulated records, 10 % of the requests, each
batch with a batch id), ``/v1/select`` (60 %, ten candidates), ``/v1/risk``
(30 %). The simulation is long enough that new calls keep arriving for
the whole soak (its clock moves on, servers and keys recur).

Every ``--sample-s`` seconds it records the server's resident memory
(``VmRSS`` of the process, from ``/proc``), and at the end reports the RSS
at each quarter of the run and the growth rate over the last half, in
MB per minute: a plateau is a last-half growth near 0. What may grow is
bounded by settings (see the README): the event store on disk, batch ids
kept a day, and in memory the preload decision's per-key state, up to
``preload_max_keys`` keys (``--max-keys`` sets it for the soak, so that a
run of minutes reaches the bound).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import _support  # noqa: F401 - first: it keeps bench/http.py off the import path
import httpx
import orjson
from _support import free_port, predictor_command, start_server

#: Records per ingestion batch.
BATCH = 20


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _paced(rate: float, stop: threading.Event, send) -> None:  # type: ignore[no-untyped-def]
    """Call ``send(i)`` ``rate`` times per second until ``stop`` (no catching up after a stall)."""
    interval, i = 1.0 / rate, 0
    next_at = time.perf_counter()
    while not stop.is_set():
        send(i)
        i += 1
        next_at = max(next_at + interval, time.perf_counter() - interval)
        time.sleep(max(0.0, next_at - time.perf_counter()))


def soak(minutes: float, rate: float, sample_s: float, max_keys: int | None = None) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="predictor-soak-"))
    port = free_port()
    batches_per_s = rate * 0.10
    needed = int(batches_per_s * minutes * 60 * BATCH) + BATCH
    log = folder / "sim.jsonl"
    subprocess.run([predictor_command(), "simulate", "--events", str(needed), "--seed", "7",
                    "--out", str(log)], check=True, stdout=subprocess.DEVNULL)
    lines = log.read_bytes().splitlines()  # posted as they are: no parsing in the client
    calls = [r for r in map(orjson.loads, lines[:20_000]) if r.get("kind", "call") == "call"]
    servers = sorted({r["server"] for r in calls})
    task_types = sorted({r["task_type"] for r in calls if r.get("task_type")})
    proc = start_server(folder, port, {} if max_keys is None
                        else {"PREDICTOR_PRELOAD_MAX_KEYS": str(max_keys)})
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    errors: list[str] = []
    sent = {"ingest": 0, "select": 0, "risk": 0}

    def client_loop(kind: str, share: float) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            def send(i: int) -> None:
                if kind == "ingest":
                    batch = lines[i * BATCH:(i + 1) * BATCH]
                    if not batch:
                        return
                    body = b'{"batch_id":"soak-%d","records":[%s]}' % (i, b",".join(batch))
                    reply = client.post("/v1/telemetry", content=body,
                                        headers={"content-type": "application/json"})
                elif kind == "select":
                    ask = {"task_type": task_types[i % len(task_types)],
                           "candidates": servers[:10]}
                    reply = client.post("/v1/select", json=ask)
                else:
                    reply = client.post("/v1/risk", json={"server": servers[i % len(servers)]})
                sent[kind] += 1
                if reply.status_code not in (200, 429):
                    errors.append(f"{kind}: {reply.status_code} {reply.text[:100]}")

            _paced(rate * share, stop, send)

    threads = [threading.Thread(target=client_loop, args=(kind, share), daemon=True)
               for kind, share in (("ingest", 0.10), ("select", 0.60), ("risk", 0.30))]
    samples: list[tuple[float, float]] = []
    started = time.perf_counter()
    try:
        for thread in threads:
            thread.start()
        while (elapsed := time.perf_counter() - started) < minutes * 60:
            samples.append((round(elapsed, 1), round(rss_mb(proc.pid), 1)))
            time.sleep(sample_s)
        samples.append((round(time.perf_counter() - started, 1), round(rss_mb(proc.pid), 1)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        proc.terminate()
        proc.wait(timeout=60)
    return {"minutes": minutes, "rate_per_s": rate, "preload_max_keys": max_keys or "default",
            "sent": sent, "errors": errors[:10],
            "error_count": len(errors), **summarize(samples), "samples": samples,
            "folder": str(folder)}


def summarize(samples: list[tuple[float, float]]) -> dict:
    """RSS at each quarter of the run and the growth over its last half (MB per minute).

    >>> summarize([(0, 100.0), (60, 150.0), (120, 160.0), (180, 160.0), (240, 161.0)])
    {'rss_mb_at_quarters': [150.0, 160.0, 160.0, 161.0], 'last_half_growth_mb_per_min': 0.5, 'peak_rss_mb': 161.0}
    """  # noqa: E501
    end = samples[-1][0]
    quarters = []
    for q in (0.25, 0.5, 0.75, 1.0):
        quarters.append(next(rss for t, rss in samples if t >= q * end))
    half = [(t, rss) for t, rss in samples if t >= end / 2]
    if len(half) >= 2:
        times, values = zip(*half, strict=True)
        slope = statistics.linear_regression(times, values).slope * 60
    else:
        slope = 0.0
    return {"rss_mb_at_quarters": quarters, "last_half_growth_mb_per_min": round(slope, 2),
            "peak_rss_mb": max(rss for _, rss in samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=80.0, help="requests per second in all")
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--max-keys", type=int, default=None,
                        help="the service's preload_max_keys (default: its own, 250,000)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = soak(args.minutes, args.rate, args.sample_s, args.max_keys)
    text = json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2)
    print(text)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
