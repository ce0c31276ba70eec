"""Evaluation on scenarios built from the shared real logs (issue 15's weaknesses).

Usage::

    python bench/scenarios.py [--out FILE.json]

``tool_mix_shift``: ``wfcommons-pegasus`` with the montage and soykb workflow
families moved to the last 19 % of the time span
(:func:`predictor.data.scenarios.late_groups`), so that the test part holds
tools the training part never saw; ``predictor evaluate`` on it and on the
original log, and the ``resources`` figures of both (the served allocate
decision's and the batch model's duration MAE and 80 % interval coverage).
Needs ``../shared/data`` beside the checkout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import _support  # noqa: F401 - first: it keeps bench/http.py off the import path
import orjson
from _support import ROOT, predictor_command

from predictor.data.scenarios import late_groups

SHARED = ROOT.parent / "shared" / "data"


def _resources(log: Path, folder: Path) -> dict:
    report = folder / f"{log.stem}.report.json"
    subprocess.run([predictor_command(), "evaluate", str(log), "--report", str(report)],
                   check=True, capture_output=True)
    full = json.loads(report.read_text())
    section = full["resources"]
    return {"train_events": full["train_events"], "test_events": full["test_events"],
            "duration_mae_ms": section["duration_mae_ms"],
            "interval_coverage_80_served": section.get("interval_coverage_80_served"),
            "interval_coverage_80_batch": section.get("interval_coverage_80")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    source = SHARED / "wfcommons-pegasus.jsonl.gz"
    if not source.exists():
        sys.exit(f"{source} not found: ../shared/data must be beside the checkout")
    folder = Path(tempfile.mkdtemp(prefix="predictor-bench-scenarios-"))
    with gzip.open(source) as handle:
        raw = [orjson.loads(line) for line in handle]
    shifted = late_groups(raw, {"montage", "soykb"},
                          key=lambda r: r["workflow_id"].split("/")[1])
    log = folder / "pegasus-late-montage-soykb.jsonl"
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in shifted))
    report = {
        "command": " ".join(["python", "bench/scenarios.py", *sys.argv[1:]]),
        "tool_mix_shift": _resources(log, folder),
        "original": _resources(source, folder),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
