"""The pyfunc of a registered batch family (MLflow models-from-code)."""

import mlflow

from predictor.training.pyfunc import FamilyModel

mlflow.models.set_model(FamilyModel())
