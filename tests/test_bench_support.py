"""The benchmarks' shared helpers (``bench/_support.py``): their docstring examples.

The figures of the README come from the benchmark scripts; what they measure
with (the peak memory of process trees) is checked here.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _support():
    spec = importlib.util.spec_from_file_location("bench_support", BENCH / "_support.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_support_examples_hold() -> None:
    result = doctest.testmod(_support(), optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2 and result.failed == 0


def test_peak_counts_a_child_process() -> None:
    support = _support()
    # A child that holds 96 MiB for a moment: its tree's peak and the sum over trees see it.
    child = subprocess.Popen([sys.executable, "-c",
                              "import time; b = b'x' * (96 * 2**20); time.sleep(1.0)"])
    with support.PeakRss({"bench": os.getpid(), "child": child.pid}, interval_s=0.02) as peak:
        child.wait()
        time.sleep(0.05)
    assert peak.mb["child"] >= 96
    assert peak.mb["all"] >= peak.mb["child"]
