"""The batch champions of the MLflow registry, as the service sees them.

``predictor train`` registers each family as ``predictor-<family>`` and
moves the alias ``champion`` (see :mod:`predictor.training.train`). At start and on
``POST /v1/models/reload`` the service reads every family's champion: its
version, the metrics of the run that trained it, when it was trained, and
the fitted bundle itself (through the pyfunc wrapper, whose ``load_context``
checks the artifact's sha256 before unpickling it; registry artifacts are
ours, never a client's).

MLflow is imported only here and only when a registry is used, so a
service without one starts fast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["REGISTERED_FAMILIES", "Champion", "load_champions", "resolve_tracking_uri"]

log = logging.getLogger(__name__)

#: Families ``predictor train`` registers (see :data:`predictor.training.bundles.BUNDLES`).
REGISTERED_FAMILIES = ("performance", "resources", "cache", "load", "risk")


@dataclass
class Champion:
    """One family's registered champion."""

    family: str
    name: str
    version: str
    run_id: str | None
    trained_at: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    bundle: Any = None
    error: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "run_id": self.run_id,
                "trained_at": self.trained_at, "metrics": self.metrics, "error": self.error}


def resolve_tracking_uri(configured: str | None, workdir: Path | None = None) -> str | None:
    """The registry to read: the configured URI, else ``sqlite:///mlflow.db`` if that file exists.

    A service never creates an empty tracking database as a side effect.

    >>> resolve_tracking_uri("http://127.0.0.1:5000")
    'http://127.0.0.1:5000'
    >>> import tempfile
    >>> resolve_tracking_uri(None, Path(tempfile.mkdtemp())) is None
    True
    """
    if configured:
        return configured
    db = (workdir or Path.cwd()) / "mlflow.db"
    return f"sqlite:///{db}" if db.exists() else None


def _millis(value: int | None) -> str | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC).isoformat()


def load_champions(tracking_uri: str) -> dict[str, Champion]:
    """Every registered family's champion with its bundle (families with none are left out)."""
    from predictor.training.registry import registry_at

    with registry_at(tracking_uri):
        return _load(tracking_uri)


def _load(tracking_uri: str) -> dict[str, Champion]:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    champions: dict[str, Champion] = {}
    for family in REGISTERED_FAMILIES:
        name = f"predictor-{family}"
        try:
            version = client.get_model_version_by_alias(name, "champion")
        except MlflowException:
            continue  # never trained, or no champion yet
        champion = Champion(family=family, name=name, version=str(version.version),
                            run_id=version.run_id,
                            trained_at=_millis(version.creation_timestamp))
        try:
            if version.run_id:
                champion.metrics = dict(client.get_run(version.run_id).data.metrics)
            model = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
            champion.bundle = model.unwrap_python_model().bundle
        except Exception as err:  # a broken artifact must not take the service down
            log.warning("champion %s v%s not loaded: %s", name, version.version, err)
            champion.error = f"{type(err).__name__}: {err}"
        champions[family] = champion
    return champions
