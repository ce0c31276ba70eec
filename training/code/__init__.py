"""MLflow models-from-code: each module here names the model its pyfunc serves.

``mlflow.pyfunc.log_model(python_model=<one of these files>)`` stores the
file, not a cloudpickled object; loading runs the file, which builds the
model from this installed package. The fitted state itself is a signed
artifact (:mod:`predictor.models.persistence`).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["FAMILY_MODEL", "ONLINE_MODEL"]

#: The batch families' pyfunc (:class:`predictor.training.pyfunc.FamilyModel`).
FAMILY_MODEL = str(Path(__file__).with_name("family_model.py"))
#: The online checkpoints' pyfunc (:class:`predictor.training.online.OnlineFamilyModel`).
ONLINE_MODEL = str(Path(__file__).with_name("online_model.py"))
