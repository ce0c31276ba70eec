"""river's scaler and linear-model step for several models on the same inputs, compiled.

Several online linear models that read the same call (a median, an upper
quantile, a success classifier, ...) repeat the same work in river: each
walks the call's inputs, reads and writes its own weight per input, and
the shared scaler is walked once more, in Python. :class:`ScaledLinearStack`
holds the scaler's statistics and every model's weights and AdaGrad sums as
rows of numpy arrays over one index of input names, and steps them in one
call of a loop compiled by numba (compiled at the first call, cached
beside the module for later processes; numpy's per-operation cost on
arrays of some thirty inputs was as large as river's loops).

The arithmetic is river's, for linear models that step with AdaGrad at a
constant rate, clip their loss gradient and have no L1 or L2 penalty (the
setting river's own step takes one input at a time): the scaler's
running mean and variance per input present in the call (river's
``StandardScaler.learn_one``, then ``transform_one``), then per model the
raw prediction, the clipped loss gradient, the intercept's step and
AdaGrad's per-weight step. Inputs a call does not hold are not touched, as
in river's dictionaries. The weights equal river's up to the last bits of
the dot product (river sums in its own order); ``tests/models/test_linear_stack.py``
checks it against river's models.

>>> from river import linear_model, optim, preprocessing
>>> def river_pipeline(model):
...     return preprocessing.StandardScaler() | model
>>> median = linear_model.LinearRegression(optimizer=optim.AdaGrad(0.05), clip_gradient=1.0)
>>> upper = linear_model.LinearRegression(optimizer=optim.AdaGrad(0.01), clip_gradient=1.0,
...                                       loss=optim.losses.Quantile(0.95))
>>> stack = ScaledLinearStack()
>>> rows = [stack.add_model(m) for m in (median, upper)]
>>> pipelines = [river_pipeline(m.clone()) for m in (median, upper)]
>>> for i in range(200):
...     x = {"load": float(i % 7), "size": float(i % 3)}
...     y = 2.0 * x["load"] - x["size"]
...     stack.learn(x, [(rows[0], y), (rows[1], y)])
...     for pipeline in pipelines:
...         pipeline.learn_one(x, y)
>>> x = {"load": 3.0, "size": 1.0}
>>> [round(v, 9) for v in stack.predict(x, rows)] == [
...     round(p.predict_one(x), 9) for p in pipelines]
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from river import optim

from predictor.models.kernels import kernel

__all__ = ["ScaledLinearStack", "log_loss_gradient", "scaled_raw", "scaled_step"]

_START = 64
#: Tuples of input names whose positions are kept (:meth:`ScaledLinearStack.index`).
_LAYOUTS_KEPT = 4096
#: The losses a stacked model may have, as the compiled step knows them.
_SQUARED, _QUANTILE, _LOG = 0, 1, 2


def _loss_code(loss: Any) -> tuple[int, float]:
    """(code, quantile) of a river loss the compiled step computes exactly as river does."""
    if type(loss) is optim.losses.Squared:
        return _SQUARED, 0.0
    if type(loss) is optim.losses.Quantile:
        return _QUANTILE, float(loss.alpha)
    if type(loss) is optim.losses.Log and loss.weight_pos == 1.0 and loss.weight_neg == 1.0:
        return _LOG, 0.0
    raise ValueError(f"no compiled step for the loss {loss!r}")


class ScaledLinearStack:
    """A shared standard scaler and several AdaGrad linear models over one input index.

    Models are added from river linear models (:meth:`add_model`), whose
    settings (loss, learning rate, gradient clip, intercept rate) are read
    once; their learned state lives here. Rows name the models.
    """

    def __init__(self) -> None:
        self._names: dict[str, int] = {}
        self._capacity = _START
        # The scaler: river's StandardScaler statistics per input.
        self._counts = np.zeros(_START)
        self._means = np.zeros(_START)
        self._vars = np.zeros(_START)
        # Per model (row): weights and AdaGrad's sums of squared gradients per input,
        # then its intercept, settings and steps taken.
        self._weights = np.zeros((0, _START))
        self._g2 = np.zeros((0, _START))
        self._intercepts = np.zeros(0)
        self._losses: list[Any] = []
        self._loss_codes = np.zeros(0, dtype=np.int64)
        self._alphas = np.zeros(0)
        self._lrs = np.zeros(0)
        self._eps = np.zeros(0)
        self._clips = np.zeros(0)
        self._intercept_lrs = np.zeros(0)
        self._steps = np.zeros(0, dtype=np.int64)

    # --- models -----------------------------------------------------------
    def add_model(self, model: Any) -> int:
        """Add a model with ``model``'s settings (a river linear model); return its row.

        ``model`` must step with AdaGrad (river's or
        :class:`predictor.models.adagrad.AdaGrad`) at a constant rate, with a
        constant intercept rate, no L1 or L2 penalty, and a squared,
        quantile or (unweighted) log loss.
        """
        optimizer = model.optimizer
        if not isinstance(optimizer, optim.AdaGrad) or model.l1 or model.l2:
            raise ValueError("only AdaGrad models without L1 or L2 penalty stack")
        rate, intercept_rate = optimizer.lr, model.intercept_lr
        if not isinstance(rate, optim.schedulers.Constant) or not isinstance(
                intercept_rate, optim.schedulers.Constant):
            raise ValueError("only constant learning rates stack")
        code, alpha = _loss_code(model.loss)
        self._weights = np.vstack([self._weights, np.zeros((1, self._capacity))])
        self._g2 = np.vstack([self._g2, np.zeros((1, self._capacity))])
        self._intercepts = np.append(self._intercepts, float(model.intercept))
        self._losses.append(model.loss)
        self._loss_codes = np.append(self._loss_codes, code)
        self._alphas = np.append(self._alphas, alpha)
        self._lrs = np.append(self._lrs, rate.learning_rate)
        self._eps = np.append(self._eps, optimizer.eps)
        self._clips = np.append(self._clips, float(model.clip_gradient))
        self._intercept_lrs = np.append(self._intercept_lrs, intercept_rate.learning_rate)
        self._steps = np.append(self._steps, 0)
        return len(self._losses) - 1

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> tuple[ScaledLinearStack, int]:
        """A stack holding what river's ``StandardScaler() | <linear model>`` learned, and
        the model's row: its scaler's statistics, weights, AdaGrad sums, intercept and
        steps (what a state saved before a model moved onto the stack held).
        """
        scaler, model = pipeline.steps.values()
        stack = cls()
        row = stack.add_model(model)
        names = list(dict.fromkeys([*scaler.counts, *model._weights]))
        for name in names:
            stack._names[name] = len(stack._names)
        if len(stack._names) > stack._capacity:
            stack._grow(len(stack._names))
        g2 = model.optimizer.g2
        for name, i in stack._names.items():
            stack._counts[i] = scaler.counts.get(name, 0)
            stack._means[i] = scaler.means.get(name, 0.0)
            stack._vars[i] = scaler.vars.get(name, 0.0)
            stack._weights[row, i] = model._weights.get(name, 0.0)
            stack._g2[row, i] = g2.get(name, 0.0)
        stack._intercepts[row] = float(model.intercept)
        stack._steps[row] = int(model.optimizer.n_iterations)
        return stack, row

    def weights(self, row: int) -> dict[str, float]:
        """The model's weight per input name (as river's ``model.weights``)."""
        return {name: float(self._weights[row, i]) for name, i in self._names.items()}

    def intercept(self, row: int) -> float:
        """The model's intercept."""
        return float(self._intercepts[row])

    @property
    def steps(self) -> list[int]:
        """Steps each model (row) has taken."""
        return self._steps.tolist()

    @property
    def models(self) -> int:
        """How many models the stack holds."""
        return len(self._losses)

    # --- inputs -----------------------------------------------------------
    def _grow(self, size: int) -> None:
        capacity = self._capacity
        while capacity < size:
            capacity *= 2
        extra = capacity - self._capacity
        self._counts = np.concatenate([self._counts, np.zeros(extra)])
        self._means = np.concatenate([self._means, np.zeros(extra)])
        self._vars = np.concatenate([self._vars, np.zeros(extra)])
        self._weights = np.hstack([self._weights, np.zeros((self.models, extra))])
        self._g2 = np.hstack([self._g2, np.zeros((self.models, extra))])
        self._capacity = capacity

    def index(self, x: dict[str, float]) -> np.ndarray:
        """The positions of ``x``'s inputs, adding the new ones.

        Kept per tuple of input names (calls repeat a few such tuples: their
        one-hot categories and missing indicators), so that a call whose names
        came before costs one lookup rather than one per input.
        """
        keys = tuple(x)
        layouts = self.__dict__.setdefault("_layouts", {})
        found = layouts.get(keys)
        if found is not None:
            return found
        names = self._names
        for name in keys:
            if name not in names:
                names[name] = len(names)
        if len(names) > self._capacity:
            self._grow(len(names))
        found = np.array([names[name] for name in keys], dtype=np.intp)
        if len(layouts) >= _LAYOUTS_KEPT:
            layouts.clear()
        layouts[keys] = found
        return found

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The scaler's and the models' arrays, in the order :func:`scaled_step` takes them
        after a call's inputs: what a compiled loop stepping the stack is given."""
        return (self._counts, self._means, self._vars, self._weights, self._g2,
                self._intercepts, self._lrs, self._eps, self._clips, self._intercept_lrs,
                self._loss_codes, self._alphas, self._steps)

    def known(self, x: dict[str, float]) -> np.ndarray:
        """The positions of ``x``'s inputs, -1 for those never learned (what :meth:`raw`
        reads)."""
        # Inputs all learned: their positions as learning keeps them.
        idx = self.__dict__.get("_layouts", {}).get(tuple(x))
        if idx is None:
            get = self._names.get
            idx = np.array([get(name, -1) for name in x], dtype=np.intp)
        return idx

    def positions(self, names: list[str]) -> np.ndarray:
        """Each name's position, -1 for those never learned, and room made for all of them:
        what a compiled loop that gives names their positions as it learns starts from
        (:meth:`name` records what it gave)."""
        if len(self._names) + len(names) > self._capacity:
            self._grow(len(self._names) + len(names))
        return np.array([self._names.get(name, -1) for name in names], dtype=np.int64)

    @property
    def inputs(self) -> int:
        """How many input names have a position."""
        return len(self._names)

    def name(self, names: dict[str, int]) -> None:
        """Record the positions a compiled loop gave new names (in the order it gave them),
        as :meth:`learn` would have."""
        for name, position in sorted(names.items(), key=lambda item: item[1]):
            if name not in self._names:
                if position != len(self._names):
                    raise ValueError(f"input {name!r} at {position}, expected {len(self._names)}")
                self._names[name] = position
        self.__dict__.pop("_layouts", None)  # rebuilt on use

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_layouts", None)  # rebuilt on use
        return state

    # --- learning and predicting -----------------------------------------
    def learn(self, x: dict[str, float], targets: Sequence[tuple[int, Any]]) -> None:
        """The scaler learns ``x``; then each ``(row, y)`` model learns ``y`` from it."""
        if not x:
            return
        idx = self.index(x)
        rows = np.array([row for row, _ in targets], dtype=np.intp)
        ys = np.array([float(y) for _, y in targets])
        scaled_step(idx, np.fromiter(x.values(), dtype=float, count=len(x)), *self.arrays(),
                    rows, ys)

    def raw(self, x: dict[str, float], rows: Sequence[int]) -> np.ndarray:
        """Each model's raw output (before its loss's mean function) on ``x``.

        Inputs never learned count as 0, as in river.
        """
        values = np.fromiter(x.values(), dtype=float, count=len(x))
        return scaled_raw(self.known(x), values, self._means, self._vars, self._weights,
                          self._intercepts, np.asarray(rows, dtype=np.intp))

    def predict(self, x: dict[str, float], rows: Sequence[int]) -> list[float]:
        """Each model's prediction on ``x``: its loss's mean function of :meth:`raw`."""
        return [float(self._losses[row].mean_func(float(value)))
                for row, value in zip(rows, self.raw(x, rows), strict=True)]



@kernel
def log_loss_gradient(raw: float, y: float) -> float:  # pragma: no cover - compiled
    """river's ``Log`` loss gradient at the raw output ``raw``, label ``y`` in {0, 1}."""
    sign = 1.0 if y != 0.0 else -1.0  # labels read as {-1, 1}
    z = raw * sign
    if z > 18.0:
        return np.exp(-z) * -sign
    if z < -18.0:
        return -sign
    return -sign / (np.exp(z) + 1.0)


@kernel
def scaled_step(idx, values, counts, means, variances, weights, g2, intercepts, lrs, eps,
                clips, intercept_lrs, loss_codes, alphas, steps, rows, ys
                ):  # pragma: no cover - compiled
    """river's ``StandardScaler.learn_one`` + ``transform_one``, then each row's GLM step:
    the inputs at positions ``idx`` hold ``values``; model ``rows[t]`` learns ``ys[t]``."""
    k = idx.size
    scaled = np.empty(k)
    for j in range(k):
        i = idx[j]
        value = values[j]
        n = counts[i] + 1.0
        counts[i] = n
        old_mean = means[i]
        mean = old_mean + (value - old_mean) / n
        means[i] = mean
        var = variances[i]
        var += ((value - old_mean) * (value - mean) - var) / n
        variances[i] = var
        scaled[j] = (value - mean) / var ** 0.5 if var != 0.0 else 0.0
    for t in range(rows.size):
        r = rows[t]
        raw = intercepts[r]
        for j in range(k):
            raw += weights[r, idx[j]] * scaled[j]
        y = ys[t]
        code = loss_codes[r]
        if code == 0:  # Squared
            gradient = 2.0 * (raw - y)
        elif code == 1:  # Quantile
            gradient = (1.0 if y < raw else 0.0) - alphas[r]
        else:
            gradient = log_loss_gradient(raw, y)
        gradient = max(min(gradient, clips[r]), -clips[r])
        intercepts[r] -= intercept_lrs[r] * gradient
        rate, epsilon = lrs[r], eps[r]
        for j in range(k):
            i = idx[j]
            step = scaled[j] * gradient
            total = g2[r, i] + step * step
            g2[r, i] = total
            weights[r, i] -= rate / (total + epsilon) ** 0.5 * step
        steps[r] += 1


@kernel
def scaled_raw(idx, values, means, variances, weights, intercepts, rows):  # pragma: no cover
    """Each row's raw output on the scaled inputs (the scaler unchanged; ``idx`` -1: unknown)."""
    out = np.empty(rows.size)
    for t in range(rows.size):
        r = rows[t]
        raw = intercepts[r]
        for j in range(idx.size):
            i = idx[j]
            if i < 0:
                continue
            var = variances[i]
            if var != 0.0:
                raw += weights[r, i] * ((values[j] - means[i]) / var ** 0.5)
        out[t] = raw
    return out
