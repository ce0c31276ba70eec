"""Decision objects that can be checkpointed although they hold a lock.

Each decision object guards its online state with a :class:`threading.Lock`,
which cannot be pickled. :class:`LockedState` leaves the lock out of the
pickled state and gives the restored object a fresh one, so a whole
:class:`predictor.engine.Engine` can be saved and resumed.

>>> import copy, threading
>>> class Counter(LockedState):
...     def __init__(self):
...         self.n = 3
...         self._lock = threading.Lock()
>>> restored = copy.deepcopy(Counter())
>>> restored.n, type(restored._lock) is type(threading.Lock())
(3, True)
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["LockedState"]


class LockedState:
    """Mixin: pickle everything but ``_lock``; restore with a new lock."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
