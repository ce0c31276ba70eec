"""Save and load fitted models as pickles, beside signed metadata that vouches for them.

``save`` writes ``NAME.joblib`` (a zlib-compressed pickle, which ``joblib.load``
also reads; files written by ``joblib.dump`` before still load) and ``NAME.json``;
the metadata records the family, variant (online or batch), library versions, feature list,
training span, metrics, the artifact's sha256, and an HMAC-SHA256 of all of
that under the signing key (:func:`signing_key`). ``load`` refuses an
artifact whose metadata is not signed with the running key, or whose hash
does not match it, before anything is unpickled; it warns when the library
versions differ from the running ones. Both files are written atomically
(a temporary file, fsynced, renamed), so a crash leaves the old pair or the
new one, never half of either.

Artifacts are pickles: the signature is what lets a loader trust one.
Anyone who can write the folder can replace the files and recompute a
sha256, but cannot sign without the key, which lives elsewhere
(``PREDICTOR_SIGNING_KEY``, or a file only its owner reads). Machines that
share artifacts (a registry, a learner and its replicas) share the key.

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> path = save({"weights": [1, 2]}, f"{folder}/m", family="load", variant="batch")
>>> obj, meta = load(path)
>>> obj, meta["family"], len(meta["sha256"]), len(meta["signature"])
({'weights': [1, 2]}, 'load', 64, 64)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import platform
import secrets
import warnings
import zlib
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import joblib

__all__ = ["FORMAT", "ArtifactIntegrityError", "IncompatibleArtifactError", "library_versions",
           "load", "save", "signing_key", "write_atomically"]

#: Layout of what is pickled. 2: one ``predictor`` package (``predictor.models``, ...) and
#: decision plug-ins; artifacts of format 1 name modules that no longer exist.
FORMAT = 2
#: How artifacts are written: a pickle (C pickler, newest protocol) compressed with zlib.
#: joblib.load reads such a file too, but joblib's own dump and load run its pure-Python
#: pickler: 3 to 5 times slower on the dict-heavy online state.
ENCODING = "zlib-pickle"

_LIBRARIES = ("predictor", "scikit-learn", "treelite", "river", "numba", "numpy", "pandas",
              "joblib", "pydantic")


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


def _key_file() -> Path:
    configured = os.environ.get("PREDICTOR_SIGNING_KEY_FILE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "predictor" / "signing.key"


def signing_key() -> bytes:
    """The key that signs and verifies artifacts.

    ``PREDICTOR_SIGNING_KEY`` (any text) when set; else the file
    ``PREDICTOR_SIGNING_KEY_FILE`` or ``~/.config/predictor/signing.key``,
    created with 32 random bytes, readable by its owner only, on first use.
    """
    given = os.environ.get("PREDICTOR_SIGNING_KEY")
    if given:
        return given.encode()
    path = _key_file()
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
        handle.flush()
        os.fsync(handle.fileno())
    return bytes.fromhex(path.read_text().strip())


def _signature(meta: dict[str, Any]) -> str:
    body = json.dumps({k: v for k, v in meta.items() if k != "signature"}, sort_keys=True,
                      default=str).encode()
    return hmac.new(signing_key(), body, hashlib.sha256).hexdigest()


def write_atomically(path: Path, write: Any) -> None:
    """Write ``path`` through ``write(temporary_path)``, fsync it, then rename it into place.

    A reader sees the old file or the new one, and after a crash the new one
    is whole or absent.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a crash
    finally:
        os.close(fd)


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
    write_atomically(artifact, lambda tmp: tmp.write_bytes(zlib.compress(
        pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), 3)))
    meta = {
        "format": FORMAT,
        "encoding": ENCODING,
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
    meta = json.loads(json.dumps(meta, default=str))  # what is signed is what is read back
    meta["signature"] = _signature(meta)
    write_atomically(artifact.with_suffix(".json"),
                     lambda tmp: tmp.write_text(json.dumps(meta, indent=2)))
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
    signature = meta.get("signature")
    if not isinstance(signature, str) or not hmac.compare_digest(signature, _signature(meta)):
        raise ArtifactIntegrityError(
            f"{artifact}: its metadata is {'not signed' if signature is None else 'signed'} "
            f"{'' if signature is None else 'with another key '}(key: PREDICTOR_SIGNING_KEY "
            f"or {_key_file()}); refusing to unpickle it. Artifacts written before 0.3 or on "
            "a machine with another key: retrain ('predictor train'), or delete the "
            "checkpoint folder and let 'predictor serve' relearn from its event store")
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
    if meta.get("encoding") == ENCODING:
        return pickle.loads(zlib.decompress(artifact.read_bytes())), meta
    return joblib.load(artifact), meta  # written by joblib.dump (before the encoding)
