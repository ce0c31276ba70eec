from __future__ import annotations

import json

from typer.testing import CliRunner

from predictor.serving.cli import app

runner = CliRunner()


def test_simulate_then_ingest_reports_bad_line(tmp_path):
    sim = tmp_path / "sim.jsonl"
    result = runner.invoke(app, ["simulate", "--events", "50", "--seed", "1", "--out", str(sim)])
    assert result.exit_code == 0, result.output
    lines = sim.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "\n".join(
            lines[:3] + ['{"ts": 1, "server": "s", "tool": "t", "latency_ms": -5}'] + lines[3:6]
        )
        + "\n"
    )
    result = runner.invoke(app, ["ingest", str(bad), "--db", str(tmp_path / "p.db"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["accepted"] == 6 and report["rejected"] == 1 and report["read"] == 7
    assert report["errors"][0]["line"] == 4
    assert report["errors"][0]["field"] == "latency_ms"


def test_strict_ingest_fails_and_stores_nothing(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ts": 1, "server": "s", "tool": "t"}\n{"ts": 2, "server": "s"}\n')
    db = tmp_path / "p.db"
    result = runner.invoke(app, ["ingest", str(bad), "--db", str(db), "--strict"])
    assert result.exit_code == 1
    from predictor.data.store import SQLiteEventStore

    with SQLiteEventStore(db) as store:
        assert store.count() == 0


def test_summary_lists_servers(tmp_path):
    sim = tmp_path / "sim.jsonl"
    runner.invoke(app, ["simulate", "--events", "400", "--out", str(sim)])
    db = tmp_path / "p.db"
    runner.invoke(app, ["ingest", str(sim), "--db", str(db)])
    result = runner.invoke(app, ["summary", "--db", str(db)])
    assert result.exit_code == 0
    assert "400 records" in result.stdout
    assert "latency_p95_ms" in result.stdout
