"""A log read a byte range per worker gives the single pass's frame and summary."""

from __future__ import annotations

import gzip
import itertools
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import orjson
import pandas as pd
import pytest

from predictor.data.readers import ReadSummary
from predictor.data.simulator import Simulator
from predictor.training.evaluate import load_log
from predictor.training.ranges import _cuts, read_in_ranges
from predictor.training.workers import WorkerPool


def _awkward_log(path: Path, n: int = 3_000, seed: int = 5) -> Path:
    """Simulated records shuffled in time (with many equal times), blank lines, broken JSON
    and invalid records among them, some lines ending in CRLF."""
    rng = random.Random(seed)
    lines = []
    for record in Simulator(seed=seed).records(n):
        epoch = datetime.fromisoformat(record["ts"].replace("Z", "+00:00")).timestamp()
        record["ts"] = round(epoch + rng.choice((0.0, 0.0, -30.0, 45.0)))
        lines.append(orjson.dumps(record) + (b"\r\n" if rng.random() < 0.1 else b"\n"))
        roll = rng.random()
        if roll < 0.01:
            lines.append(b"\n")
        elif roll < 0.02:
            lines.append(b'{"ts": 1, "server": \n')
        elif roll < 0.03:
            lines.append(b'{"ts": "yesterday", "server": "a", "tool": "q"}\n')
    path.write_bytes(b"".join(lines))
    return path


@pytest.mark.parametrize("workers", [1, 2, 3, 7])
def test_ranges_give_the_single_pass_frame_and_summary(tmp_path: Path, workers: int) -> None:
    log = _awkward_log(tmp_path / "log.jsonl")
    expected_summary = ReadSummary()
    expected = load_log([str(log)], expected_summary)
    assert expected_summary.rejected > 20  # the broken lines are there

    summary = ReadSummary()
    with ThreadPoolExecutor(2) as pool:
        frame = read_in_ranges([log], summary, pool, workers=workers, min_bytes=0)

    pd.testing.assert_frame_equal(frame, expected)
    assert summary == expected_summary  # counts, and the errors' lines in the whole file
    assert [e.line for e in summary.errors] == sorted(e.line for e in summary.errors)


def test_several_logs_and_cuts_at_line_starts(tmp_path: Path) -> None:
    first = _awkward_log(tmp_path / "a.jsonl", n=1_500, seed=1)
    second = _awkward_log(tmp_path / "b.jsonl", n=2_500, seed=2)
    data = second.read_bytes()
    cuts = _cuts(second, len(data), 4)
    assert len(cuts) == 4 and cuts[0][0] == 0 and cuts[-1][1] == len(data)
    assert all(data[start - 1:start] == b"\n" for start, _ in cuts[1:])
    assert all(end == start for (_, end), (start, _) in itertools.pairwise(cuts))

    expected_summary, summary = ReadSummary(), ReadSummary()
    expected = load_log([str(first), str(second)], expected_summary)
    with ThreadPoolExecutor(2) as pool:
        frame = read_in_ranges([first, second], summary, pool, workers=3, min_bytes=0)
    pd.testing.assert_frame_equal(frame, expected)
    assert summary == expected_summary
    assert {e.file for e in summary.errors} == {str(first), str(second)}


def test_logs_that_cannot_be_cut_are_left_to_the_single_pass(tmp_path: Path) -> None:
    plain = _awkward_log(tmp_path / "log.jsonl", n=200)
    packed = tmp_path / "log.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    csv = tmp_path / "log.csv"
    csv.write_text("ts,server,tool\n1,a,q\n")
    with ThreadPoolExecutor(1) as pool:
        for logs in ([packed], [plain, csv], [tmp_path / "missing.jsonl"]):
            assert read_in_ranges(logs, ReadSummary(), pool, workers=2, min_bytes=0) is None
        # Small logs too: a worker's start costs more than it saves.
        assert read_in_ranges([plain], ReadSummary(), pool, workers=2) is None


def test_training_reads_a_large_log_with_its_workers(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Through ``load_log(pool=...)`` with this machine's spawned workers."""
    import predictor.training.ranges as ranges

    monkeypatch.setattr(ranges, "MIN_BYTES", 0)
    log = _awkward_log(tmp_path / "log.jsonl", n=2_000)
    expected_summary, summary = ReadSummary(), ReadSummary()
    expected = load_log([str(log)], expected_summary)
    with WorkerPool(2) as pool:
        frame = load_log([str(log)], summary, pool=pool)
    pd.testing.assert_frame_equal(frame, expected)
    assert summary == expected_summary
