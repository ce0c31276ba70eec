"""river's AdaGrad with the learning rate read once per step.

river's loop reads the ``learning_rate`` property (two calls into the
scheduler) once per weight; the rate cannot change within a step
(``n_iterations`` moves after it), so :class:`AdaGrad` reads it once. The
online linear models here step on the compiled
:class:`predictor.models.linear_stack.ScaledLinearStack`, which takes their
settings from a river model with this optimizer.

>>> from river import linear_model, optim
>>> ours = linear_model.LinearRegression(optimizer=AdaGrad(0.1))
>>> river_s = linear_model.LinearRegression(optimizer=optim.AdaGrad(0.1))
>>> for i in range(50):
...     x = {"a": float(i % 7), "b": float(i % 3)}
...     ours.learn_one(x, 2.0 * x["a"] - x["b"])
...     river_s.learn_one(x, 2.0 * x["a"] - x["b"])
>>> ours.weights == river_s.weights
True
"""

from __future__ import annotations

from river import optim

__all__ = ["AdaGrad"]


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
