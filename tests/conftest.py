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
