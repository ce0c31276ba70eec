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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["REGISTERED_FAMILIES", "Champion", "keep_serving", "load_champions", "redact",
           "resolve_tracking_uri"]

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
    #: A newer champion that failed to load (version, why) while this one kept serving.
    refused: dict[str, str] | None = None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "run_id": self.run_id,
                "trained_at": self.trained_at, "metrics": self.metrics, "error": self.error,
                "refused": self.refused}


def keep_serving(new: dict[str, Champion], old: dict[str, Champion]) -> dict[str, Champion]:
    """``new``, except that a champion that failed to load leaves the one before it serving.

    The refused version and why are kept on whichever champion stays, for ``/v1/models``.

    >>> ok = Champion("risk", "predictor-risk", "3", None, None, bundle=object())
    >>> bad = Champion("risk", "predictor-risk", "4", None, None, error="tampered")
    >>> kept = keep_serving({"risk": bad}, {"risk": ok})["risk"]
    >>> kept.version, kept.refused
    ('3', {'version': '4', 'why': 'tampered'})
    """
    out = dict(new)
    for family, champion in new.items():
        if champion.bundle is not None or champion.error is None:
            continue
        refused = {"version": champion.version, "why": champion.error}
        before = old.get(family)
        if before is not None and before.bundle is not None:
            out[family] = replace(before, refused=refused)
            log.error("champion %s v%s refused (%s); v%s keeps serving", champion.name,
                      champion.version, champion.error, before.version)
        else:
            champion.refused = refused
    return out


def redact(uri: str | None) -> str | None:
    """``uri`` without its credentials (user, password, query tokens), for display.

    >>> redact("postgresql://admin:s3cret@db:5432/mlflow?sslmode=require&password=x")
    'postgresql://***@db:5432/mlflow'
    >>> redact("sqlite:///mlflow.db")
    'sqlite:///mlflow.db'
    """
    if uri is None:
        return None
    parts = urlsplit(uri)
    if "@" not in parts.netloc and not parts.query:
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return f"{parts.scheme}://{netloc}{parts.path}"


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
