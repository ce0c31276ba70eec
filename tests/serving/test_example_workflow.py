"""End to end: ``predictor run`` runs the example workflow over the real MCP servers twice.

The servers are the pinned third-party ones ``scripts/upstreams`` installs: two
``mcp-server-time``, ``mcp-server-git``, two ``@modelcontextprotocol/server-filesystem``,
``server-memory`` and ``server-everything`` (``examples/gateway.toml``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from predictor.data.store import SQLiteEventStore

ROOT = Path(__file__).resolve().parents[2]


def _predictor() -> str:
    return shutil.which("predictor") or os.path.join(os.path.dirname(sys.executable),
                                                     "predictor")


def test_example_workflow_runs_records_and_learns(tmp_path, upstreams):
    # A copy of the repository's example beside a README and a git history of its own.
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    git = {"cwd": tmp_path, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q", "-b", "main"], **git)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "add", "."],
                   **git)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit",
                    "-q", "-m", "gateway workflow telemetry decisions"], **git)
    env = dict(os.environ, PREDICTOR_UPSTREAMS=str(upstreams), PREDICTOR_LOAD_CHAMPIONS="false",
               PREDICTOR_ONLINE_REGISTRY="false", PREDICTOR_LOG_LEVEL="WARNING")

    def run(n: int) -> tuple[dict, str]:
        done = subprocess.run(
            [_predictor(), "run", "examples/research.yaml", "--config", "examples/gateway.toml",
             "--report", f"out/run-{n}.json"], cwd=tmp_path, env=env, capture_output=True,
            text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return json.loads((tmp_path / "out" / f"run-{n}.json").read_text()), done.stdout

    first, table = run(1)
    second, _ = run(2)

    for report in (first, second):
        assert report["success"] and report["steps_succeeded"] == report["steps_total"] == 13
        assert [p["phase"] for p in report["phases"]] == ["research", "implementation",
                                                        "validation"]
        assert report["validation"]["all_met"]
        assert report["validation"]["unknown"] == ["max_memory_mb"]  # no server reports it
        served = {s["id"]: s["server"] for s in report["steps"]}
        assert served["recent_commits"] == "git" and served["known"] == "memory"
        assert served["started_at"] in ("time-a", "time-b")
        assert served["readme"] in ("files-a", "files-b")
        assert served["checksum"] == "everything"
    assert "research" in table and "decisions taken" in table and "run succeeded" in table

    # The first run starts from priors; the second one's decisions come from what the first
    # one recorded.
    sources = {(d["decision"], d.get("phase")): d["source"] for d in first["decisions"]}
    assert sources["allocate", "research"] == "prior"
    assert sources["plan", "research"] == "prior"
    assert {p["predicted"]["source"] for p in second["phases"]} == {"online"}
    assert {d["source"] for d in second["decisions"]
            if d["decision"] in ("allocate", "plan", "select")} == {"online"}
    assert first["phases"][0]["predicted"]["plan_ms"] == 1000.0  # the prior per call
    assert second["phases"][0]["predicted"]["plan_ms"] < 1000.0  # learned from run 1
    research, learned_from = second["phases"][0], first["phases"][0]
    assert research["predicted"]["duration_ms"]["high"] < \
        learned_from["predicted"]["duration_ms"]["low"]  # narrower than the prior's,
    # and right about what it learned from: every tool's interval holds run 1's figure.
    for spec, tool in research["tools"].items():
        assert tool["source"] == "online"
        assert learned_from["tools"][spec]["actual_ms"] <= tool["predicted_ms"]["high"], spec
    # Run 2's own timings are wall-clock on a shared machine: whichever way they fall, the
    # runner acts on them as documented (a phase above its learned interval re-plans).
    over = [d for d in research["deviations"] if d["actual"] > d["high"]]
    assert research["within"] == (not over)
    assert research["replanned"] == bool(over)
    # (later phases are timed by the wall clock too: only research's re-plan is judged)
    assert ("research" in [r["after_phase"] for r in second["replans"]]) == bool(over)

    # Context passed under its budget into the notes, which the last phase reads back.
    notes = (tmp_path / "out" / "example" / "notes.md").read_text()
    assert 0 < len(notes) // 4 <= 1500
    reduced = next(d for d in first["decisions"] if d["decision"] == "reduce_context")
    assert reduced["step"] == "notes" and reduced["source"] == "rule"
    read_back = next(s for s in second["steps"] if s["id"] == "notes_back")
    assert read_back["status"] == "ok"

    # Every attempt is in the store, with its run and phase.
    with SQLiteEventStore(tmp_path / "out" / "gateway.db") as store:
        records = list(store.read())
    attempts = sum(len(s["attempts"]) for r in (first, second) for s in r["steps"])
    hits = sum(1 for r in (first, second) for s in r["steps"] if s["served_from"] == "cache")
    prefetched = sum(1 for r in records if (r.attrs or {}).get("prefetch_key"))
    assert len(records) == attempts + hits + prefetched
    runs = {r.workflow_id for r in records if not (r.attrs or {}).get("prefetch_key")}
    assert runs == {first["workflow_id"], second["workflow_id"]}
    assert {r.phase for r in records if r.workflow_id} == {"research", "implementation",
                                                           "validation"}
    assert {r.server for r in records} >= {"git", "memory", "everything"}
    assert all(r.success for r in records)
    summary = json.loads(subprocess.run(
        [_predictor(), "summary", "--db", str(tmp_path / "out" / "gateway.db"), "--json"],
        capture_output=True, text=True, timeout=120, check=True).stdout)
    assert summary["calls"] == len(records)
