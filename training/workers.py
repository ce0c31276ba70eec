"""This machine's worker processes for one training or evaluation job.

The families' fits and scores, and the online state, run in worker
processes of this machine. :class:`WorkerPool` takes tasks one by one, so
that a task whose input is ready starts before the others' is: training
starts learning the online state (it needs the log only) while its own
process computes the history features the families read.

The pool is the job's own (loky's executor, as joblib uses on this machine,
but not joblib's shared one) and is stopped when the job leaves it: idle
workers kept what their last task read, about 0.9 GB each on a million
records, while training went on to register the models. loky replaces a
worker whose memory grew by more than 300 MB over what it held after its
first task (what a family's task leaves behind, its heap fragmented, counts
in the next task's peak), at the cost of importing again in the new one.

>>> with WorkerPool(2) as pool:
...     pool.submit(sum, [1, 2, 3]).result()
6
>>> pool.shutdown()  # stopped already: nothing more to do
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from joblib.externals.loky import ProcessPoolExecutor

__all__ = ["THREAD_VARIABLES", "WorkerPool", "thread_limits"]

#: The variables that size native thread pools, as joblib's process backend limits them.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS")

#: Seconds an idle worker waits for a task before it stops (joblib's default).
IDLE_TIMEOUT_S = 300


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
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        # loky warns when it replaces a worker while tasks wait, naming a leak or a short
        # timeout: here it is the replacement the module describes, and the job goes on.
        warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given",
                                category=UserWarning)
        self._executor = ProcessPoolExecutor(max_workers=workers, timeout=IDLE_TIMEOUT_S,
                                             env=thread_limits(workers))

    def submit(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Run ``function(*args, **kwargs)`` in a worker; its future."""
        return self._executor.submit(function, *args, **kwargs)

    def shutdown(self, *, kill: bool = False) -> None:
        """Stop the workers: after their tasks, or (``kill``) at once, their tasks with
        them (a job that failed has no use for them)."""
        self._executor.shutdown(wait=True, kill_workers=kill)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.shutdown(kill=exc_type is not None)
