"""Shared fixtures: small seeded telemetry and the shared real traces when present."""

from __future__ import annotations

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
