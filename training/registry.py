"""MLflow's process-wide tracking and registry URIs, pointed somewhere for a while."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["registry_at"]


@contextmanager
def registry_at(uri: str) -> Iterator[None]:
    """Point MLflow's tracking and registry URIs at ``uri``; restore the caller's after.

    ``models:/`` URIs and artifact downloads resolve through the process-wide
    URIs, so a library that reads a registry must set them, and must not
    leave them set for its caller.

    >>> import mlflow
    >>> before = mlflow.get_tracking_uri()
    >>> with registry_at("sqlite:///elsewhere.db"):
    ...     mlflow.get_registry_uri()
    'sqlite:///elsewhere.db'
    >>> mlflow.get_tracking_uri() == before
    True
    """
    import mlflow

    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
