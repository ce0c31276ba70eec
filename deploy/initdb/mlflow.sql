-- MLflow's backend store: its own database beside predictor's event store.
CREATE DATABASE mlflow OWNER predictor;
