"""The pyfunc of a registered online checkpoint (MLflow models-from-code)."""

import mlflow

from predictor.training.online import OnlineFamilyModel

mlflow.models.set_model(OnlineFamilyModel())
