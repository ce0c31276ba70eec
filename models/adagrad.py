"""river's AdaGrad and linear-model step with the same arithmetic in fewer Python operations.

Every river linear model here learns with AdaGrad, one call at a time, and
its step is the online learner's largest cost. river's loop reads the
``learning_rate`` property (two calls into the scheduler) once per weight;
the rate cannot change within a step (``n_iterations`` moves after it), so
:class:`AdaGrad` reads it once. :func:`learn_glm` goes further: it is
``model.learn_one(x, y)`` for a river linear model that steps with
:class:`AdaGrad` (no L1 or L2 penalty) in one loop for the prediction and
one for the step, on the model's own state, instead of wrapping the weights,
building the gradient as a vector and dispatching through the optimizer.
The weights both produce are the same (the prediction's sum may differ in
the last bits: river sums in Rust, in its own order).

>>> from river import linear_model, optim
>>> ours = linear_model.LinearRegression(optimizer=AdaGrad(0.1))
>>> river_s = linear_model.LinearRegression(optimizer=optim.AdaGrad(0.1))
>>> fused = linear_model.LinearRegression(optimizer=AdaGrad(0.1))
>>> for i in range(50):
...     x = {"a": float(i % 7), "b": float(i % 3)}
...     ours.learn_one(x, 2.0 * x["a"] - x["b"])
...     river_s.learn_one(x, 2.0 * x["a"] - x["b"])
...     learn_glm(fused, x, 2.0 * x["a"] - x["b"])
>>> ours.weights == river_s.weights
True
>>> max(abs(fused.weights[k] - ours.weights[k]) for k in "ab") < 1e-12
True
"""

from __future__ import annotations

from typing import Any

from river import optim

__all__ = ["AdaGrad", "learn_glm", "learn_scaled_glm"]


class AdaGrad(optim.AdaGrad):
    """:class:`river.optim.AdaGrad`, stepping with the learning rate read once per step."""

    def _step_with_dict(self, w, g):
        lr = self.learning_rate
        eps = self.eps
        g2 = self.g2
        for i, gi in g.items():
            total = g2[i] + gi**2
            g2[i] = total
            w[i] -= lr / (total + eps) ** 0.5 * gi
        return w


def learn_glm(model: Any, x: dict, y: Any) -> None:
    """``model.learn_one(x, y)`` for a river ``LinearRegression`` or ``LogisticRegression``.

    The same arithmetic (see the module docstring) when the model steps with
    :class:`AdaGrad` and has no L1 or L2 penalty; any other model learns
    through its own ``learn_one``.
    """
    optimizer = model.optimizer
    if model.l1 or model.l2 or type(optimizer) is not AdaGrad:
        model.learn_one(x, y)
        return
    weights = model._weights
    get_weight = weights.get
    raw = model.intercept
    for name, value in x.items():
        raw += get_weight(name, 0.0) * value
    clip = model.clip_gradient
    loss_gradient = float(max(min(model.loss.gradient(y_true=y, y_pred=raw), clip), -clip))
    model.intercept -= model.intercept_lr.get(optimizer.n_iterations) * loss_gradient
    lr, eps, g2 = optimizer.learning_rate, optimizer.eps, optimizer.g2
    for name, value in x.items():
        gradient = value * loss_gradient
        total = g2[name] + gradient**2
        g2[name] = total
        weights[name] = get_weight(name, 0.0) - lr / (total + eps) ** 0.5 * gradient
    optimizer.n_iterations += 1


def learn_scaled_glm(pipeline: Any, x: dict, y: Any) -> None:
    """``pipeline.learn_one(x, y)`` for river's ``StandardScaler() | <linear model>``.

    What the pipeline does (the scaler learns ``x``, then scales it for the
    model), with the model's step by :func:`learn_glm`.

    >>> from river import linear_model, preprocessing
    >>> def pipe():
    ...     return preprocessing.StandardScaler() | linear_model.LinearRegression(
    ...         optimizer=AdaGrad(0.1))
    >>> ours, theirs = pipe(), pipe()
    >>> for i in range(50):
    ...     x = {"a": float(i % 7), "b": float(i % 3)}
    ...     learn_scaled_glm(ours, x, 2.0 * x["a"] - x["b"])
    ...     theirs.learn_one(x, 2.0 * x["a"] - x["b"])
    >>> x = {"a": 3.0, "b": 1.0}
    >>> abs(ours.predict_one(x) - theirs.predict_one(x)) < 1e-12
    True
    """
    scaler, model = pipeline.steps.values()
    scaler.learn_one(x)
    learn_glm(model, scaler.transform_one(x), y)
