"""This machine's worker processes for one training or evaluation job.

The families' fits and scores, and the online state, run in worker
processes of this machine. :class:`WorkerPool` takes tasks one by one, so
that a task whose input is ready starts before the others' is: training
starts learning the online state (it needs the log only) while its own
process computes the history features the families read.

Each task runs in a process of its own, started for it (the standard
library's executor, one task per child), and the pool is stopped when the
job leaves it. A process that ran a task keeps much of what the task
touched after it ends (the compiled loops and libraries it loaded, a heap
its objects fragmented), and that counted again in the peak of the next
task it ran, beside the other worker's: the job's peak memory is two tasks
at once. A new process costs its imports instead, unless the pool forks its
processes from a server that imported them once (``preload``: what
``predictor evaluate`` does; training, which has a memory budget, does not).

>>> with WorkerPool(2) as pool:
...     pool.submit(sum, [1, 2, 3]).result()
6
>>> pool.shutdown()  # stopped already: nothing more to do
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import forkserver
from typing import Any

__all__ = ["THREAD_VARIABLES", "WorkerPool", "default_workers", "thread_limits"]

#: The variables that size native thread pools, as joblib's process backend limits them.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS")

def default_workers() -> int:
    """How many worker processes a job starts by default: two, or one per CPU if fewer."""
    return min(2, os.cpu_count() or 1)


def thread_limits(workers: int) -> dict[str, str]:
    """The environment that keeps each worker's native thread pools (OpenMP, BLAS) to its
    share of the CPUs, as joblib sets it for its own workers.

    A variable the caller set already is passed on as set.

    >>> limits = thread_limits(os.cpu_count() or 1)
    >>> limits["OMP_NUM_THREADS"] == os.environ.get("OMP_NUM_THREADS", "1")
    True
    """
    share = max((os.cpu_count() or 1) // max(workers, 1), 1)
    env = {name: os.environ.get(name, str(share)) for name in THREAD_VARIABLES}
    # Intel TBB's schedulers coordinate across processes (joblib sets it too).
    env.setdefault("ENABLE_IPC", os.environ.get("ENABLE_IPC", "1"))
    return env


class WorkerPool:
    """``workers`` processes of this machine running one job's tasks (see the module).

    Parameters
    ----------
    workers
        How many processes.
    preload
        Modules every task's process starts with, imported once: the processes
        are then forked from a server process that imported them (the standard
        library's ``forkserver``, started with the workers' thread limits, so
        that the native libraries those modules load size their pools for a
        worker), not spawned to import them again for each task (about two
        seconds each, scikit-learn's import most of them). The server holds those
        modules (about 230 MB) beside the workers while the pool runs: a job with a
        memory budget (training) leaves this empty.
    """

    def __init__(self, workers: int, *, preload: tuple[str, ...] = ()) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        limits = thread_limits(workers)
        if preload:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(list(preload))
            saved = {name: os.environ.get(name) for name in limits}
            os.environ.update(limits)  # what the server inherits when it starts now
            try:
                forkserver.ensure_running()
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
        else:
            # Spawned, not forked: a fork copies this process (its threads' locks included).
            context = multiprocessing.get_context("spawn")
        self._executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=context, max_tasks_per_child=1,
            initializer=_limit_threads, initargs=(limits,))

    def submit(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Run ``function(*args, **kwargs)`` in a worker; its future."""
        return self._executor.submit(function, *args, **kwargs)

    def shutdown(self, *, kill: bool = False) -> None:
        """Stop the workers: after their tasks, or (``kill``) at once, their tasks with
        them (a job that failed has no use for them)."""
        if kill:
            # Python 3.14 has ``terminate_workers``; before it, the executor's own table
            # of its processes is the only handle on them.
            terminate = getattr(self._executor, "terminate_workers", None)
            if terminate is not None:
                terminate()
            else:
                for process in list((getattr(self._executor, "_processes", None) or {}).values()):
                    process.kill()
        self._executor.shutdown(wait=True, cancel_futures=kill)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.shutdown(kill=exc_type is not None)


def _limit_threads(env: dict[str, str]) -> None:
    """A worker's first step: its native thread pools sized before any library starts them
    (a spawned worker has imported only this module and the job's main module by then)."""
    os.environ.update(env)
