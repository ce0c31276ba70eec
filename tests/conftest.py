"""Shared fixtures: small seeded telemetry and the shared real traces when present."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sim_records() -> list[dict]:
    from predictor.data.simulator import Simulator

    return list(Simulator(seed=3).records(6_000))


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_snippets(language: str = "python") -> list[str]:
    """The README's fenced code blocks in ``language`` (list-item blocks dedented)."""
    import re
    import textwrap

    blocks = re.findall(rf"^( *)```{language}\n(.*?)^\1```", README.read_text(), re.M | re.S)
    return [textwrap.dedent(body) for _, body in blocks]


@pytest.fixture(scope="session")
def readme():
    """:func:`readme_snippets`, for tests (test modules do not import conftest)."""
    return readme_snippets


#: Where the PostgreSQL tests find a server (the machine's, trust auth).
PG_BASE = __import__("os").environ.get("PREDICTOR_PG_BASE",
                                       "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture()
def pg_url():
    """A fresh PostgreSQL database for one test (dropped after it); skipped without a server.

    CI sets ``PREDICTOR_REQUIRE_POSTGRES=1``: there, no server is a failure, not a skip.
    """
    import os
    import uuid

    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(f"{PG_BASE}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as err:
        if os.environ.get("PREDICTOR_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"no PostgreSQL at {PG_BASE} (PREDICTOR_REQUIRE_POSTGRES=1): {err}")
        pytest.skip(f"no PostgreSQL reachable at {PG_BASE}: {err}")
    name = f"predictor_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{PG_BASE}/{name}"
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def _wait_http(url: str, proc=None, log=None, seconds: float = 60.0) -> None:
    """Wait until ``url`` answers 200; fail with the end of ``log`` if ``proc`` exits first."""
    import time

    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.25)
    tail = Path(log).read_text()[-2000:] if log is not None and Path(log).exists() else ""
    pytest.fail(f"{url} did not answer: {tail}")


@pytest.fixture(scope="session")
def wait_http():
    """:func:`_wait_http`, for tests (test modules do not import conftest)."""
    return _wait_http


@pytest.fixture(scope="session")
def upstreams() -> Path:
    """The folder of the real MCP servers ``scripts/upstreams`` installs (pinned)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([str(root / "scripts" / "upstreams")], capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0:
        pytest.fail(f"scripts/upstreams failed: {done.stderr[-1000:]}")
    return Path(done.stdout.strip())


_CALL = {"ts": "2026-01-05T00:00:00.250Z", "server": "a", "tool": "t", "latency_ms": 12.5,
        "task_type": "docs", "concurrency": 2, "attempt": 1, "success": True}
_HEALTH = {"ts": "2026-01-05T00:00:00Z", "kind": "health", "server": "a", "reachable": True,
          "cpu_pct": 40.0, "queue_depth": 3}
_VALUES = [None, "", "x", "12", "true", 0, -1, 1, 2.5, -0.0, 100, 100.5, 1e308, 2**31,
          2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, True, False, [], {}, [1],
          {"a": 1}, {"a": None}, {"a": [1]}, {"a": 2**64}, {"a": 1e308}, "retry", "call",
          "health", "2026-01-05T00:00:00Z"]
_TIMES = ["2026-01-05T00:00:00Z", "2026-01-05T00:00:00", "2026-01-05 00:00:00Z",
         "2026-01-05t00:00:00Z", "2026-01-05T00:00:00z", "2026-01-05T00:00:00+02:00",
         "2026-01-05T00:00:00-00:00", "2026-01-05T00:00:00.1Z", "2026-01-05T00:00:00.123456Z",
         "2026-01-05T00:00:00.1234565Z", "2026-01-05T00:00:00.123456789Z",
         "2026-01-05T00:00Z", "2026-01-05", "2026-01-05T24:00:00Z", "2026-02-30T00:00:00Z",
         "2026-01-05T00:00:60Z", "2026-01-05T00:00:00+24:00", "2026-01-05T00:00:00+23:59",
         "2026-01-05T00:00:00+23:60", "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z",
         "9999-12-31T23:59:59.999999-23:59", "9999-12-31T23:59:59Z", "20260105T000000Z",
         "2026-W02-1T00:00:00Z", "2026-005T00:00:00Z", " 2026-01-05T00:00:00Z", "1767571200",
         0, 1, -1, 1767571200, 1767571200.5, 1767571200.123457, 1767571200.1234567,
         1767571200.9999995, 2e10, 20000000001, 1767571200123, 1e15, 1e19, 4e-7, 0.0000005,
         253402300799, 253402300800, -62135596801, 3021548006.8828125]


@pytest.fixture(scope="session")
def telemetry_variants() -> list[bytes]:
    """JSON lines around the telemetry contract: plain, coerced, unknown-field, invalid."""
    lines = []
    for base in (_CALL, _HEALTH):
        for field, value in itertools.product(
                [*_CALL, *_HEALTH, "error_type", "recovery", "cost_usd", "mem_pct", "attrs",
                 "cache_hit", "output_tokens", "unknown"], _VALUES):
            lines.append(json.dumps({**base, field: value}).encode())
        for ts in _TIMES:
            lines.append(json.dumps({**base, "ts": ts}).encode())
        for field in base:
            lines.append(json.dumps({k: v for k, v in base.items() if k != field}).encode())
    lines += [
        json.dumps({**_CALL, "error_type": "timeout"}).encode(),
        json.dumps({**_CALL, "success": None, "error_type": "timeout"}).encode(),
        json.dumps({**_CALL, "success": False, "error_type": "timeout"}).encode(),
        b'{"ts":"2026-01-05T00:00:00Z","server":"a\xff","tool":"t"}',
        b'{"ts":"2026-01-05T00:00:00Z","server":"a\\ud800","tool":"t"}',
        b'{"ts":"2026-01-05T00:00:00Z","server":"a","tool":"t","latency_ms":NaN}',
        b'{"ts":"2026-01-05T00:00:00Z","server":"a","tool":"t","latency_ms":1e999}',
        b'{"ts":"2026-01-05T00:00:00Z","server":"a","tool":"t"} trailing',
        b'{"ts":"2026-01-05T00:00:00Z","server":"a","server":"b","tool":"t"}',
        b'\xef\xbb\xbf{"ts":"2026-01-05T00:00:00Z","server":"a","tool":"t"}',
        b'[1, 2]', b'"text"', b'null',
    ]
    return lines
