"""The families: which an evaluation scores, what each reads, which training registers.

Plain names only, so that a process can plan a job without importing the
families' models: training's main process reads the log and computes the
features while its workers fit and score, and holds none of the libraries
the fits need (scikit-learn, river, numba: about 100 MB) until it
registers what they produced.

>>> sorted(set(BUNDLES.values()) - set(FAMILIES))
[]
>>> all(set(parts) <= {"frame", "calls", "history"} for parts in READS.values())
True
"""

from __future__ import annotations

__all__ = ["BUNDLES", "FAMILIES", "READS"]

#: The report's sections, one per family, in the contract's order.
FAMILIES = ("performance", "selection", "resources", "cache", "scaling", "risk")

#: family -> the parts of the features (:data:`predictor.training.features.PARTS`) its fit
#: and score steps read; a task holds only those (any other part raises when used).
READS: dict[str, tuple[str, ...]] = {
    "performance": ("calls", "history"),
    "selection": ("frame", "calls", "history"),
    "resources": ("calls", "history"),
    "cache": ("calls",),
    "scaling": ("calls",),
    "risk": ("frame", "calls", "history"),
}

#: Registered family -> the report section (and evaluation fit) it comes from. Each fit's
#: ``bundle`` is the bundle registered as ``predictor-<family>``
#: (:mod:`predictor.training.bundles`).
BUNDLES = {
    "performance": "performance",
    "resources": "resources",
    "cache": "cache",
    "load": "scaling",
    "risk": "risk",
}
