"""Loops compiled by numba at their first call, with numba imported only then.

numba and LLVM add memory and start-up time to a process, and most
processes that import the models never run a compiled loop: the main
process of an evaluation or of a training job, which only receives fitted
models from its workers; a service that has not learned yet; a command
that reads a checkpoint.
:func:`kernel` marks a function to be compiled with
``numba.njit(cache=True, nogil=True)`` when it is first called, so only the
processes that run one pay for numba.

A kernel may call other kernels of any module: before compiling, the
kernels its code names are compiled first and its module's names rebound
to them (numba compiles a call to a global only when it finds a compiled
function there). The first call also rebinds the kernel's own name in its
module, so later calls from that module go to numba's dispatcher directly.
Compiled code is cached beside the module (``__pycache__``): a later
process loads it, much faster than compiling it.

>>> @kernel
... def _twice(values):
...     return values * 2.0
>>> _twice.compiled  # nothing compiled: numba is not needed yet
False
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Kernel", "kernel"]

_LOCK = threading.RLock()


class Kernel:
    """A function compiled by numba at its first call (see the module docstring).

    Parameters
    ----------
    function
        The function, written in the subset of Python numba compiles.
    """

    def __init__(self, function: Callable[..., Any]) -> None:
        self.py_func = function
        self._dispatcher: Any = None
        functools.update_wrapper(self, function)

    @property
    def compiled(self) -> bool:
        """Whether numba compiled (or loaded from its cache) the function yet."""
        return self._dispatcher is not None

    def dispatcher(self) -> Any:
        """numba's dispatcher of the function, compiling it (and what it calls) first."""
        if self._dispatcher is not None:
            return self._dispatcher
        with _LOCK:
            if self._dispatcher is None:
                import numba

                names = self.py_func.__globals__
                for name in self.py_func.__code__.co_names:
                    callee = names.get(name)
                    if isinstance(callee, Kernel) and callee is not self:
                        names[name] = callee.dispatcher()
                self._dispatcher = numba.njit(cache=True, nogil=True)(self.py_func)
                if names.get(self.__name__) is self:
                    names[self.__name__] = self._dispatcher
        return self._dispatcher

    def __call__(self, *args: Any) -> Any:
        return self.dispatcher()(*args)


def kernel(function: Callable[..., Any]) -> Kernel:
    """Mark ``function`` to be compiled by numba at its first call."""
    return Kernel(function)
