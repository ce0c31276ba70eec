"""A whole log's prequential pass over a stacked online model, run by compiled loops.

An evaluation replays a log through an online model: before each call, the
calls that have finished are learned (label delay,
:class:`predictor.models.delay.LabelDelay`), then the call is predicted if it
is scored. Done one Python call per step, building a dictionary of inputs
per call, that was most of a family's evaluation; the models on a
:class:`~predictor.models.linear_stack.ScaledLinearStack` instead run it in a
compiled loop over the calls' inputs as arrays
(:meth:`predictor.models.features.CallFeaturizer.sparse`), a chunk at a time.

:func:`run_chunks` drives such a loop: it keeps the inputs of the calls
still waiting to be learned from one chunk to the next, and gives each
input name its position in the stack when a call holding it is first
learned, as the stack's own ``learn`` does. :func:`gather` is the loop's
step that reads one call's inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from predictor.models.kernels import kernel
from predictor.models.linear_stack import ScaledLinearStack

__all__ = ["ChunkLoop", "gather", "run_chunks"]

#: ``loop(start, stop, slots, ids, values, positions, added)``: the compiled loop over calls
#: ``start`` to ``stop``; call ``i``'s inputs are row ``slots[i]`` of ``ids`` and ``values``.
ChunkLoop = Callable[[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                     None]


def run_chunks(inputs: Iterable[tuple[np.ndarray, np.ndarray]], names: list[str],
               stack: ScaledLinearStack, release: np.ndarray, loop: ChunkLoop) -> None:
    """Run ``loop`` over every chunk of ``inputs`` (ids of ``names`` and values per call).

    ``release[i]`` is the call before which call ``i`` is learned
    (:func:`predictor.models.delay.release_schedule`; the number of calls: never):
    its inputs are kept until then. The names learned get their positions in
    ``stack`` in the order the loop first learned them.
    """
    n = len(release)
    # The positions of names the stack knows; the others get theirs when first learned.
    positions = stack.positions(names)
    added = np.array([stack.inputs], dtype=np.int64)
    waiting = np.zeros(0, dtype=np.int64)  # calls of earlier chunks not learned yet
    ids, values = np.zeros((0, 0), dtype=np.int64), np.zeros((0, 0))
    start = 0
    for chunk_ids, chunk_values in inputs:
        stop = start + len(chunk_ids)
        if len(waiting):
            ids, values = np.vstack([ids, chunk_ids]), np.vstack([values, chunk_values])
        else:
            ids, values = chunk_ids, chunk_values
        rows = np.concatenate([waiting, np.arange(start, stop)])
        slots = np.full(n, -1, dtype=np.int64)
        slots[rows] = np.arange(len(rows))
        loop(start, stop, slots, ids, values, positions, added)
        later = (release[rows] >= stop) & (release[rows] < n)
        waiting, ids, values = rows[later], ids[later], values[later]
        start = stop
    stack.name({name: position for name, position in zip(names, positions.tolist(),
                                                         strict=True) if position >= 0})


@kernel
def gather(ids, values, slot, positions, added, idx, inputs, learn
           ):  # pragma: no cover - compiled
    """Call ``slot``'s inputs into ``idx`` (stack positions) and ``inputs``; returns how many.

    Learning gives a name never learned the next position (``added``); a
    prediction reads it as unknown (-1), as the stack's ``raw`` does.
    """
    m = 0
    for c in range(ids.shape[1]):
        name = ids[slot, c]
        if name < 0:
            continue
        if learn and positions[name] < 0:
            positions[name] = added[0]
            added[0] += 1
        idx[m] = positions[name]
        inputs[m] = values[slot, c]
        m += 1
    return m
