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

__all__ = ["BUNDLES", "EARLY", "EVALUATE_ORDER", "FAMILIES", "ORDER", "READS"]

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

#: The order training hands the families to a machine's workers, so that the two finish
#: together. Training starts the online state and the families of ``EARLY`` first (fit +
#: score seconds on the cost check's 1,000,000-record simulation, this machine, one run:
#: the online state 56, scaling 27, then selection 69, resources 54, cache 48, risk 29,
#: performance 26): the worker that ran scaling takes resources, the other one selection
#: once the online state is learned, and the three shortest fill in after them. Selection
#: first left one worker idle for the last 22 s of 175.
ORDER = ("resources", "selection", "cache", "risk", "performance", "scaling")

#: The order when the families are all the workers run (``predictor evaluate``): longest
#: first (fit + score seconds on the first 300,000 records of that simulation, this
#: machine: resources 30, selection 25, performance 22, cache 13, risk 12, scaling 9), so
#: that the two workers finish together; ``ORDER`` left one idle for a fifth of the run.
EVALUATE_ORDER = ("resources", "selection", "performance", "cache", "risk", "scaling")

#: The families training starts as soon as the log's frame and calls are written, before
#: the history features (they read none: :data:`READS`): the worker that the online state
#: leaves free would wait for them otherwise. The shortest, so that the longest still go
#: first once the history is there.
EARLY = ("scaling",)

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
