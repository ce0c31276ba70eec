"""The docstring examples of every module, imported under its installed name.

The layer folders are installed as ``predictor.data``, ``predictor.models``
and so on; pytest's own doctest collection would import ``data/schema.py``
as ``data.schema``, a second copy of the module whose classes differ from
the installed ones. Each module is therefore imported by its package name
here and its examples run with :mod:`doctest`.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import predictor

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(predictor.__path__, "predictor.")
) + sorted(
    f"predictor.{layer}.{info.name}"
    for layer in ("data", "models", "training", "serving")
    for info in pkgutil.iter_modules(importlib.import_module(f"predictor.{layer}").__path__)
)
MODULES = sorted(set(MODULES))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                                   verbose=False)
    failures: list[str] = []
    for test in finder.find(module, name):
        result = runner.run(test, out=failures.append)
        assert result.failed == 0, "".join(failures)


def test_every_layer_has_examples() -> None:
    assert {"predictor.data.schema", "predictor.engine", "predictor.serving.catalog"} <= set(
        MODULES)
