"""Roles: the learner's published state, and how replicas load it.

One learner (elected by :func:`predictor.data.election.leadership_for`: an
advisory lock on PostgreSQL, a file lock beside a SQLite store) learns from
the shared store and publishes the whole engine
every ``sync_interval_s`` while it learns; replicas and standby learners
load the newest state as it appears. A published state is

``b"PSTATE1\\n"`` + header length (4 bytes, big-endian) + header (JSON) + payload

where the payload is the engine pickled by joblib and compressed with zlib,
and the header says its size before and after compression, the cursor and
records learned, and carries an HMAC-SHA256 of the header and payload with
the signing key (``PREDICTOR_SIGNING_KEY``, the same on every machine of a
deployment). Nothing is unpickled before that signature checks out: a
database writer without the key cannot make a replica run code.

There is one writer of states, so states never conflict; each replaces the
last whole. A replica answers every decision from one state until it swaps
in the next one atomically (one reference assignment): between two syncs
its answers are those of the learner's state at its last publication, at
most ``sync_interval_s`` plus the learner's lag old, and never a mix of two.

>>> from predictor.engine import Engine
>>> packed, raw = pack_state(Engine(), publisher="doc")
>>> engine, header = unpack_state(packed)
>>> type(engine).__name__, header["publisher"], header["raw_bytes"] == raw
('Engine', 'doc', True)
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import pickle
import struct
import time
import zlib
from typing import Any

import joblib

from predictor.models.persistence import ArtifactIntegrityError, signing_key

__all__ = ["pack_state", "seal_state", "snapshot_state", "unpack_state"]

_MAGIC = b"PSTATE1\n"


def _mac(header: bytes, payload: bytes) -> str:
    digest = hmac.new(signing_key(), header, hashlib.sha256)
    digest.update(payload)
    return digest.hexdigest()


def pack_state(engine: Any, *, publisher: str) -> tuple[bytes, int]:
    """``engine`` as a signed, compressed state; and its size before compression."""
    raw, header = snapshot_state(engine, publisher=publisher)
    return seal_state(raw, header), len(raw)


def snapshot_state(engine: Any, *, publisher: str) -> tuple[bytes, dict[str, Any]]:
    """``engine`` pickled, and the header of its state: the part that must see the engine.

    :func:`seal_state` does the rest (compress, sign) from these bytes alone,
    so it may run in another thread while the engine goes on learning
    (zlib and the HMAC release the GIL on large buffers).
    """
    # The C pickler: joblib's pure-Python one takes 3 to 5 times longer on the engine.
    raw = pickle.dumps(engine, protocol=pickle.HIGHEST_PROTOCOL)
    return raw, {"publisher": publisher, "created": time.time(), "raw_bytes": len(raw),
                 "encoding": "pickle", "cursor": engine.cursor, "learned": engine.learned,
                 "store_id": engine.store_id}


def seal_state(raw: bytes, header: dict[str, Any]) -> bytes:
    """The published state of ``raw`` (from :func:`snapshot_state`): compressed, signed."""
    payload = zlib.compress(raw, 6)
    encoded = json.dumps({**header, "bytes": len(payload)}, sort_keys=True).encode()
    signature = _mac(encoded, payload).encode()
    return _MAGIC + struct.pack(">I", len(encoded)) + encoded + signature + payload


def unpack_state(blob: bytes) -> tuple[Any, dict[str, Any]]:
    """The engine in a state made by :func:`pack_state`, after its signature checks out.

    Raises
    ------
    ArtifactIntegrityError
        When the state is malformed or not signed with this deployment's key.
    """
    if not blob.startswith(_MAGIC) or len(blob) < len(_MAGIC) + 4:
        raise ArtifactIntegrityError("not a published engine state")
    at = len(_MAGIC)
    (size,) = struct.unpack(">I", blob[at:at + 4])
    header = blob[at + 4:at + 4 + size]
    signature = blob[at + 4 + size:at + 4 + size + 64]
    payload = blob[at + 4 + size + 64:]
    if not hmac.compare_digest(signature, _mac(header, payload).encode()):
        raise ArtifactIntegrityError("the published state is not signed with this "
                                     "deployment's key (PREDICTOR_SIGNING_KEY); refusing to "
                                     "unpickle it")
    meta = json.loads(header)
    raw = zlib.decompress(payload)
    # States published before the encoding was named were written by joblib.dump.
    engine = pickle.loads(raw) if meta.get("encoding") == "pickle" else joblib.load(
        io.BytesIO(raw))
    return engine, meta
