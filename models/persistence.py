"""Save and load fitted models with joblib, beside metadata that vouches for them.

``save`` writes ``NAME.joblib`` and ``NAME.json``; the metadata records the
family, variant (online or batch), library versions, feature list,
training span, metrics and the artifact's sha256. ``load`` refuses an
artifact whose hash does not match its metadata, and warns when the library
versions differ from the running ones.

joblib files are pickles: load only artifacts this project wrote (a model
registry, a checkpoint folder), never a file a client sent.

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> path = save({"weights": [1, 2]}, f"{folder}/m", family="load", variant="batch")
>>> obj, meta = load(path)
>>> obj, meta["family"], len(meta["sha256"])
({'weights': [1, 2]}, 'load', 64)
"""

from __future__ import annotations

import hashlib
import json
import platform
import warnings
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import joblib

__all__ = ["FORMAT", "ArtifactIntegrityError", "IncompatibleArtifactError", "library_versions",
           "load", "save"]

#: Layout of what is pickled. 2: one ``predictor`` package (``predictor.models``, ...) and
#: decision plug-ins; artifacts of format 1 name modules that no longer exist.
FORMAT = 2

_LIBRARIES = ("predictor", "scikit-learn", "treelite", "river", "numpy", "pandas", "joblib",
              "pydantic")


class ArtifactIntegrityError(RuntimeError):
    """The artifact on disk is not the one its metadata describes."""


class IncompatibleArtifactError(RuntimeError):
    """The artifact was written by a version of predictor whose layout this one cannot read."""


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(obj: Any, path: str | Path, *, family: str, variant: str,
         features: list[str] | None = None, training_span: tuple[float, float] | None = None,
         metrics: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``obj`` to ``path.joblib`` and its metadata to ``path.json``; return the artifact."""
    base = Path(path)
    base = base.with_suffix("") if base.suffix in (".joblib", ".json") else base
    base.parent.mkdir(parents=True, exist_ok=True)
    artifact = base.with_name(base.name + ".joblib")
    joblib.dump(obj, artifact, compress=3)
    meta = {
        "format": FORMAT,
        "family": family,
        "variant": variant,
        "created_at": datetime.now(UTC).isoformat(),
        "libraries": library_versions(),
        "features": list(features or []),
        "training_span": None if training_span is None else {
            "start": datetime.fromtimestamp(training_span[0], UTC).isoformat(),
            "end": datetime.fromtimestamp(training_span[1], UTC).isoformat(),
        },
        "metrics": metrics or {},
        "artifact": artifact.name,
        "sha256": _sha256(artifact),
        **(extra or {}),
    }
    artifact.with_suffix(".json").write_text(json.dumps(meta, indent=2, default=str))
    return artifact


def load(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Load an artifact written by :func:`save`, after checking its sha256."""
    artifact = Path(path)
    if artifact.suffix != ".joblib":
        artifact = artifact.with_name(artifact.name + ".joblib")
    meta_path = artifact.with_suffix(".json")
    if not meta_path.exists():
        raise ArtifactIntegrityError(f"{artifact}: no metadata file {meta_path.name} beside it")
    meta = json.loads(meta_path.read_text())
    actual = _sha256(artifact)
    if actual != meta.get("sha256"):
        raise ArtifactIntegrityError(
            f"{artifact}: sha256 {actual} does not match its metadata ({meta.get('sha256')}); "
            "refusing to load a file that changed after it was saved"
        )
    if meta.get("format", 1) != FORMAT:
        raise IncompatibleArtifactError(
            f"{artifact}: written by predictor {meta.get('libraries', {}).get('predictor', '?')} "
            f"in format {meta.get('format', 1)}; this version reads format {FORMAT}. Retrain "
            "with 'predictor train' (registry models), or delete the checkpoint folder and "
            "let 'predictor serve' relearn from its event store")
    running = library_versions()
    changed = {k: (v, running.get(k)) for k, v in meta.get("libraries", {}).items()
               if running.get(k) != v and k != "predictor"}
    if changed:
        warnings.warn(f"{artifact} was saved with other library versions: {changed}",
                      stacklevel=2)
    return joblib.load(artifact), meta
