"""Online checkpoints in the MLflow registry: ``predictor-<family>-online``.

The online state of the service (:class:`predictor.engine.Engine`) is
registered one family at a time, every family from the same snapshot, so
that a service started on a new machine (or after losing its state folder)
resumes learning where the last checkpoint stopped. ``predictor train``
registers the state learned from its logs; ``predictor serve`` registers
its own on a schedule and when it stops.

Each version is a pyfunc (:class:`OnlineFamilyModel`) whose ``predict``
answers the family's decision for each row of a DataFrame of requests
(columns: the fields of the decision's request model: the family's primary
decision in :data:`predictor.decisions.DECISIONS`), with one JSON answer per
row. Its tags say
which snapshot it belongs to (``checkpoint``), the store its cursor counts
in (``store_id``) and the cursor itself, so :func:`load_online` only ever
assembles parts of one snapshot.
"""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from predictor.decisions import online_families, primary
from predictor.engine import Engine
from predictor.training.pyfunc import pip_requirements, row_fields

__all__ = ["OnlineFamilyModel", "SavedEngine", "load_online", "online_model_name",
           "register_online"]

log = logging.getLogger(__name__)

def online_model_name(family: str) -> str:
    """The registered name of a family's online checkpoints.

    >>> online_model_name("load")
    'predictor-load-online'
    """
    return f"predictor-{family}-online"


class OnlineFamilyModel(mlflow.pyfunc.PythonModel):
    """A family's online checkpoint answering its decision, one request per row."""

    def load_context(self, context) -> None:  # type: ignore[no-untyped-def]
        from predictor.models.persistence import load

        part, meta = load(context.artifacts["part"])
        self.family = meta["family"]
        self.engine = Engine.from_parts({self.family: part}, meta.get("engine_progress"))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # type: ignore[no-untyped-def]
        decision = primary(self.family)
        request_model = decision.request
        answers = []
        for i, row in enumerate(pd.DataFrame(model_input).to_dict("records")):
            try:
                request = request_model.model_validate(row_fields(row))
            except ValueError as err:
                raise ValueError(f"row {i}: {err}") from err
            answers.append(self.engine.answer(decision.name, request).model_dump_json())
        return pd.DataFrame({"answer": answers})


@dataclass(frozen=True)
class SavedEngine:
    """An engine's online state saved family by family (:meth:`Engine.save_parts`).

    What a training worker hands back instead of the engine: the process
    that registers it then holds one family's part at a time, not the whole
    engine while the other families are still evaluated.
    """

    paths: dict[str, Path]
    learned: int

    @classmethod
    def of(cls, engine: Engine, directory: str | Path) -> SavedEngine:
        """Save ``engine``'s parts into ``directory``."""
        return cls(engine.save_parts(directory), engine.learned)


def register_online(engine: Engine | SavedEngine, *, source: str,
                    experiment: str = "predictor") -> dict[str, str]:
    """Register every family's online state from one snapshot; return family -> version.

    Uses the tracking and registry URIs already set (``mlflow.set_tracking_uri``).
    ``source`` says who checkpointed (``train``, ``serve``) and is tagged. The
    run is a child of the active run if there is one, else a run of ``experiment``.
    ``engine`` may be its parts saved already (:class:`SavedEngine`).
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from predictor.models.persistence import load
    from predictor.training.code import ONLINE_MODEL

    checkpoint = uuid.uuid4().hex[:12]
    versions: dict[str, str] = {}
    client = MlflowClient()
    with tempfile.TemporaryDirectory() as tmp:
        saved = isinstance(engine, SavedEngine)
        paths = engine.paths if saved else engine.save_parts(Path(tmp))
        progress = json.loads(paths["load"].with_suffix(".json").read_text())["engine_progress"]
        tags = {"checkpoint": checkpoint, "source": source,
                "cursor": str(progress["cursor"]), "learned": str(progress["learned"]),
                "store_id": str(progress["store_id"] or "")}
        if mlflow.active_run() is not None:
            run = mlflow.start_run(run_name="online-checkpoint", nested=True)
        else:
            # Named explicitly: the process-wide active experiment may be another store's.
            found = client.get_experiment_by_name(experiment)
            run = mlflow.start_run(run_name="online-checkpoint", experiment_id=(
                found.experiment_id if found else client.create_experiment(experiment)))
        with run:
            mlflow.set_tags({"online_checkpoint": checkpoint, "source": source})
            mlflow.log_metrics({"learned": float(progress["learned"]),
                                "cursor": float(progress["cursor"])})
            for family, path in paths.items():
                example = pd.DataFrame([primary(family).example])
                probe = OnlineFamilyModel()
                probe.family = family
                part = load(path)[0] if saved else engine.part(family)
                probe.engine = Engine.from_parts({family: part}, progress)
                signature = infer_signature(example, probe.predict(None, example))
                signature.inputs = _request_schema(primary(family).request)
                info = mlflow.pyfunc.log_model(
                    name=f"{family}-online", python_model=ONLINE_MODEL,
                    artifacts={"part": str(path), "metadata": str(path.with_suffix(".json"))},
                    signature=signature, input_example=example,
                    registered_model_name=online_model_name(family),
                    pip_requirements=pip_requirements(),
                )
                version = str(info.registered_model_version)
                for key, value in tags.items():
                    client.set_model_version_tag(online_model_name(family), version, key, value)
                versions[family] = version
    return versions


def _request_schema(request: type) -> Any:
    """The pyfunc input schema of a decision's request: one column per field.

    Text fields are strings; every other column takes any type, because a
    DataFrame holds ``10`` as int64 where the request wants a number, and
    MLflow will not turn int64 into double (the request model validates
    each row anyway).
    """
    from mlflow.types.schema import AnyType, ColSpec, Schema

    schema = request.model_json_schema()
    required = set(schema.get("required", ()))
    columns = []
    for name, prop in schema["properties"].items():
        types = {prop.get("type")} | {option.get("type") for option in prop.get("anyOf", ())}
        text = types - {None, "null"} == {"string"}
        columns.append(ColSpec("string" if text else AnyType(), name, required=name in required))
    return Schema(columns)


def load_online(tracking_uri: str) -> tuple[Engine, dict[str, Any]] | None:
    """The newest complete online checkpoint in the registry, as an engine; ``None`` if none.

    Returns the engine and a description (checkpoint, versions, cursor,
    store id). A checkpoint counts as complete when every family has a
    version tagged with it; the newest such one is taken.
    """
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    by_checkpoint: dict[str, dict[str, Any]] = {}
    for family in online_families():
        try:
            found = client.search_model_versions(f"name = '{online_model_name(family)}'")
        except mlflow.exceptions.MlflowException:
            return None
        for version in found:
            checkpoint = version.tags.get("checkpoint")
            if checkpoint:
                by_checkpoint.setdefault(checkpoint, {})[family] = version
    complete = [versions for versions in by_checkpoint.values()
                if set(versions) == set(online_families())]
    if not complete:
        return None
    newest = max(complete, key=lambda v: max(int(x.creation_timestamp) for x in v.values()))
    from predictor.models.persistence import load
    from predictor.training.registry import registry_at

    parts: dict[str, dict[str, Any]] = {}
    progress: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, registry_at(tracking_uri):
        for family, version in newest.items():
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{version.name}/{version.version}",
                dst_path=str(Path(tmp) / family))
            artifact = next(Path(local).rglob("*.joblib"))
            part, meta = load(artifact)
            parts[family] = part
            progress = meta.get("engine_progress", progress)
    engine = Engine.from_parts(parts, progress)
    any_version = next(iter(newest.values()))
    return engine, {"checkpoint": any_version.tags.get("checkpoint"),
                    "versions": {f: str(v.version) for f, v in newest.items()},
                    "cursor": engine.cursor, "store_id": engine.store_id,
                    "source": any_version.tags.get("source")}
