"""Instructions the online learner executes per record, counted by valgrind.

Usage::

    python bench/instructions.py [--events 6000] [--seed 0]

On a shared, noisy machine the learner's records per second vary by a
third between runs of the same code (``bench/learn.py`` reports medians
and a ratio to parsing for that reason); the instructions it executes do
not. This runs the same script twice under ``valgrind --tool=callgrind``
(``apt-get install valgrind``; about 50 times slower than without it):
once reading a ``--events`` simulation and teaching a fresh
:class:`predictor.engine.Engine` its first 100 records (imports, reading,
the compiled kernels loaded: the base), once doing that and then teaching
another fresh engine every record. The difference, divided by the
records, is what learning a record costs in instructions. Run it with
each code to compare them: two runs of the same code differed by 0.8 %
(379,194 and 382,401 instructions per record), a change of a tenth by ten
times that.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import _support  # noqa: F401 - first: it keeps bench/http.py off the import path

from predictor.data.simulator import write_simulation

_CHILD = """
import sys
from predictor.data.readers import ReadSummary, read_records
from predictor.engine import Engine
records = list(read_records(sys.argv[1], ReadSummary()))
Engine().learn(records[:100])  # the compiled kernels loaded (or compiled) here
if sys.argv[2] == "learn":
    Engine().learn(records)
"""


def _instructions(log: Path, mode: str, folder: Path) -> int:
    out = folder / f"callgrind.{mode}"
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
         "-c", _CHILD, str(log), mode], capture_output=True, text=True, check=True)
    return int(re.search(r"Collected : (\d+)", done.stderr).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log = folder / "sim.jsonl"
        write_simulation(log, args.events, args.seed)
        # Warm numba's cache outside valgrind: a kernel compiled under it would count.
        subprocess.run([sys.executable, "-c", _CHILD, str(log), "base"], check=True)
        base = _instructions(log, "base", folder)
        learn = _instructions(log, "learn", folder)
    print(json.dumps({
        "command": f"python bench/instructions.py --events {args.events} --seed {args.seed}",
        "records": args.events,
        "instructions_base": base,
        "instructions_learning": learn - base,
        "instructions_per_record": round((learn - base) / args.events),
    }, indent=2))


if __name__ == "__main__":
    main()
