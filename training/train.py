"""``predictor train``: logs in, registered models out, one MLflow run per job.

The job is a chain of steps, each handing a typed result to the next:

1. **features** (:class:`predictor.training.features.Features`): the logs read,
   validated and split in time, history features computed once;
2. **fit**, per family: its models fitted on the training part (a typed fit
   such as ``PerformanceFit``, whose ``bundle`` is what gets registered);
3. **score**, per family: the fit, the served decision and the baselines on
   the test part, as ``predictor evaluate`` reports them;
4. **register** (:func:`register`), per family: a child run with every metric
   of its report section and its plots, and its bundle logged as a pyfunc
   (:class:`predictor.training.pyfunc.FamilyModel`) registered as
   ``predictor-<family>``;
5. **promote** (:func:`promote`): its own child run. The alias ``champion``
   moves to the new version only when the new model can rank (where that
   applies) and its loss on this job's holdout (the newest data) is lower
   than the current champion's on the same holdout; ``--promote
   always|never`` overrides.

The parent run holds the input dataset (source, digest, event count, time
span), parameters and the evaluation plots. Every run carries the tag
``predictor.step`` (``train``, ``register``, ``promote``).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictor.data.frame import frame_records
from predictor.data.readers import ReadSummary
from predictor.training.evaluate import (
    Evaluation,
    evaluate_features,
    load_log,
    release_freed_memory,
    start_family,
    start_task,
)
from predictor.training.families import BUNDLES, EARLY
from predictor.training.features import Features, FeaturesFile, Options
from predictor.training.partitions import Partitions, WindowedLog, read_window
from predictor.training.workers import WorkerPool, default_workers

__all__ = ["DEFAULT_TRACKING_URI", "FamilyOutcome", "Registered", "TrainResult", "promote",
           "register", "tracking_problem", "train", "train_steps"]

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
PROMOTE_CHOICES = ("always", "if-better", "never")
_INPUT_COLUMNS = ("ts", "kind", "server", "tool", "task_type", "workflow_id", "phase",
                  "input_tokens", "concurrency", "attempt", "cache_key", "latency_ms",
                  "success", "output_tokens", "cost_usd", "reachable", "cpu_pct", "mem_pct",
                  "queue_depth")


@dataclass
class FamilyOutcome:
    family: str
    version: str | None = None
    promoted: bool = False
    reason: str = ""
    loss: float | None = None
    champion_loss: float | None = None


@dataclass
class TrainResult:
    run_id: str
    evaluation: Evaluation
    families: list[FamilyOutcome] = field(default_factory=list)
    #: family -> version of ``predictor-<family>-online`` registered by this job.
    online: dict[str, str] = field(default_factory=dict)


def _flatten(section: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in section.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float) and np.isfinite(value):
            out[name] = float(value)
    return out


_STRING_COLUMNS = {"ts", "kind", "server", "tool", "task_type", "workflow_id", "phase",
                   "cache_key"}
_BOOL_COLUMNS = {"success", "reachable"}


def _input_schema():
    """Every contract field, optional but ``ts`` and ``server``.

    Names are typed as strings; numbers, flags and ``ts`` (RFC 3339 text or
    epoch seconds) accept any type, because telemetry mixes ints, floats and
    missing values and the records are validated by :mod:`predictor.data.schema` anyway.
    """
    from mlflow.types.schema import AnyType, ColSpec, Schema

    return Schema([
        ColSpec("string" if name in _STRING_COLUMNS - {"ts"} else AnyType(), name,
                required=name in ("ts", "server"))
        for name in _INPUT_COLUMNS
    ])


def _input_example(frame: pd.DataFrame, rows: int = 20) -> pd.DataFrame:
    """Telemetry records as a pyfunc takes them: contract columns, ``ts`` as RFC 3339 text."""
    calls = frame[frame["kind"] == "call"].head(rows)
    example = calls[[c for c in _INPUT_COLUMNS if c in calls]].copy()
    example["ts"] = pd.to_datetime(example["ts"], unit="s", utc=True).map(
        lambda t: t.isoformat().replace("+00:00", "Z"))
    for name in _BOOL_COLUMNS & set(example):
        example[name] = example[name].map(lambda v: None if pd.isna(v) else bool(v)).astype(
            object)
    return example.dropna(axis=1, how="all").reset_index(drop=True)


def _dataset(frame: pd.DataFrame, logs: Sequence[str | Path]):
    """The input dataset of the parent run: where the log came from, its digest and schema.

    ``mlflow.data.from_pandas`` infers the schema and digest by visiting every
    value in Python, which grows with the log; the frame's columns
    are typed already, so the schema follows from the dtypes, and the digest
    hashes every row in vectorized code.
    """
    import hashlib

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types.schema import ColSpec, Schema

    table = frame.drop(columns=["attrs"])
    rows = pd.util.hash_pandas_object(table, index=False).to_numpy()
    digest = hashlib.sha256(rows.tobytes()).hexdigest()[:8]
    schema = Schema([ColSpec("string" if table[name].dtype == object else "double", name)
                     for name in table.columns])
    source = resolve_dataset_source(", ".join(str(p) for p in logs))
    return MetaDataset(source, name="telemetry", digest=digest, schema=schema)


def _decide(promote: str, name: str, loss: float | None, features: Features,
            client) -> tuple[bool, str, float | None]:
    import mlflow

    if promote == "never":
        return False, "--promote never", None
    try:
        client.get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:
        return True, "no champion yet", None
    if promote == "always":
        return True, "--promote always", None
    if loss is None:
        return False, "the new model has no holdout loss on this log", None
    champion = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    try:
        old = champion.unwrap_python_model().bundle.loss(
            features.frame, features.split.test_mask, features.history)
    except Exception as err:  # an incompatible champion should not block training
        log.warning("champion of %s could not be scored: %s", name, err)
        return True, f"the champion could not be scored on this holdout ({err})", None
    if old is None:
        return True, "the champion has no loss on this holdout", None
    if loss < old:
        return True, f"holdout loss {loss:.6g} < champion's {old:.6g}", old
    return False, f"holdout loss {loss:.6g} is not below the champion's {old:.6g}", old


def train_steps(families: Sequence[str] | None = None, online: bool = True) -> int:
    """How many progress messages :func:`train` sends (at most), for a progress bar.

    Reading, history features, the evaluation's start and one message per
    evaluated family, plots, three per trained family (registering, its
    version, its promotion; two if skipped), and three for the online state
    (learned, registering, registered).

    >>> train_steps()
    28
    """
    return 4 + 6 + 3 * len(families or BUNDLES) + (3 if online else 0)


@dataclass(frozen=True)
class Registered:
    """One family's registration step: its model version and its loss on the holdout."""

    family: str
    run_id: str
    bundle: Any
    version: str | None
    loss: float | None
    reason: str = ""


def register(family: str, evaluation: Evaluation, plots: Sequence[Path], folder: Path,
             example: pd.DataFrame, pip: list[str]) -> Registered:
    """The register step: one child run with the family's figures, its model registered.

    The child run (tag ``predictor.step=register``) holds every metric of the
    family's report section and its plots; the fitted bundle is logged as a
    pyfunc and registered as ``predictor-<family>``. Nothing moves an alias
    here: that is :func:`promote`'s.
    """
    import mlflow
    from mlflow.models import ModelSignature, infer_signature

    from predictor.models.persistence import save
    from predictor.training.code import FAMILY_MODEL
    from predictor.training.pyfunc import frame_from_pandas

    features = evaluation.features
    section_name = BUNDLES[family]
    section = evaluation.report.get(section_name, {})
    fit = evaluation.fits.get(section_name)
    bundle = getattr(fit, "bundle", None)
    with mlflow.start_run(run_name=family, nested=True) as run:
        mlflow.set_tags({"family": family, "predictor.step": "register"})
        mlflow.log_dict(section, f"{section_name}.json")
        metrics = _flatten(section)
        if metrics:
            mlflow.log_metrics(metrics)
        for plot in plots:
            if _plot_family(plot.name) == family:
                mlflow.log_artifact(str(plot), artifact_path="plots")
        if bundle is None:
            reason = section.get("reason", "no model for this log")
            mlflow.set_tag("skipped", reason)
            return Registered(family, run.info.run_id, None, None, None, reason)
        loss = evaluation.losses[section_name] if section_name in evaluation.losses else \
            bundle.loss(features.frame, features.split.test_mask, features.history)
        if loss is not None:
            mlflow.log_metric("holdout_loss", loss)
        ts = features.frame["ts"]
        train_mask = features.split.train_mask
        path = save(bundle, folder / family, family=family, variant="batch",
                    training_span=(float(ts[train_mask].min()), float(ts[train_mask].max())),
                    metrics=metrics,
                    features=getattr(getattr(bundle, "featurizer", None), "feature_names_",
                                     None))
        output = bundle.predict(frame_from_pandas(example))
        info = mlflow.pyfunc.log_model(
            name="model", python_model=FAMILY_MODEL,
            artifacts={"bundle": str(path), "metadata": str(path.with_suffix(".json"))},
            signature=ModelSignature(inputs=_input_schema(),
                                     outputs=infer_signature(example, output).outputs),
            input_example=example, registered_model_name=f"predictor-{family}",
            pip_requirements=pip,
        )
        version = str(info.registered_model_version)
        mlflow.set_tags({"loss": bundle.metric, "model_version": version})
    return Registered(family, run.info.run_id, bundle, version, loss)


def promote(registered: Sequence[Registered], features: Features, policy: str,
            client) -> list[FamilyOutcome]:
    """The promote step: move each family's ``champion`` alias, or say why not.

    Runs as its own child run (tag ``predictor.step=promote``) with one tag
    per family (``promoted.<family>``, ``promotion_reason.<family>``); each
    family's register run is tagged with the same decision. A model that
    cannot rank is never the champion; otherwise ``policy`` decides
    (``if-better``: a lower loss than the champion's on this job's holdout).
    """
    import mlflow

    outcomes: list[FamilyOutcome] = []
    with mlflow.start_run(run_name="promote", nested=True):
        mlflow.set_tags({"predictor.step": "promote", "promote": policy})
        for entry in registered:
            outcome = FamilyOutcome(entry.family, entry.version, loss=entry.loss,
                                    reason=entry.reason)
            outcomes.append(outcome)
            if entry.bundle is None:
                continue
            name = f"predictor-{entry.family}"
            unfit = getattr(entry.bundle, "why_not_champion", lambda loss: None)(entry.loss)
            if unfit is not None:  # a model that cannot rank is never the champion
                promoted, why, old = False, f"cannot be champion: {unfit}", None
            else:
                promoted, why, old = _decide(policy, name, entry.loss, features, client)
            outcome.promoted, outcome.reason, outcome.champion_loss = promoted, why, old
            if promoted:
                client.set_registered_model_alias(name, "champion", entry.version)
            decision = {"promoted": str(promoted).lower(), "promotion_reason": why[:5000]}
            mlflow.set_tags({f"{key}.{entry.family}": value for key, value in decision.items()})
            client.set_tag(entry.run_id, "promoted", decision["promoted"])
            client.set_tag(entry.run_id, "promotion_reason", decision["promotion_reason"])
            if old is not None:
                mlflow.log_metric(f"champion_holdout_loss.{entry.family}", old)
                client.log_metric(entry.run_id, "champion_holdout_loss", old)
        mlflow.log_dict({o.family: o.__dict__ for o in outcomes}, "promotion.json")
    return outcomes


def train(logs: Sequence[str | Path], *, families: Sequence[str] | None = None,
          tracking_uri: str | None = None, experiment: str = "predictor",
          promote: str = "if-better", online: bool = True,
          progress: Callable[[str], None] | None = None,
          cluster: str | None = None, max_events: int | None = None) -> TrainResult:
    """Train, evaluate, log, register and promote; see the module docstring.

    The steps hand typed results on: :class:`Features` (once), each family's
    fit and score (:func:`predictor.training.evaluate.evaluate_features`),
    :func:`register` per family, then :func:`promote`.

    ``max_events`` bounds what any process holds: the logs are read in
    partitions, the families fit and score on the newest ``max_events``
    records, and the online state learns every record
    (:mod:`predictor.training.partitions`); the report then says so under
    ``"window"``. ``None``: the whole log at once.
    """
    if promote not in PROMOTE_CHOICES:
        raise ValueError(f"promote must be one of {PROMOTE_CHOICES}, got {promote!r}")
    chosen = list(families or BUNDLES)
    unknown = set(chosen) - set(BUNDLES)
    if unknown:
        raise ValueError(f"unknown families {sorted(unknown)}; known: {list(BUNDLES)}")
    policy = promote
    progress = progress or (lambda message: None)
    uri = tracking_uri or DEFAULT_TRACKING_URI
    jobs = default_workers()
    # This machine's workers, for the job (stopped before its files are removed): one
    # starts on the online state as soon as the log is read.
    with ExitStack() as stack:
        # MLflow is set up in this process only once the evaluation is over: held here
        # meanwhile, its store took ~90 MB of the job's peak. A child process tries the
        # store while the log is read, so that one that cannot be used still fails the job
        # before the evaluation, not after it.
        checker = stack.enter_context(ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn")))
        tracking = checker.submit(tracking_problem, uri, experiment)
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        pool = stack.enter_context(nullcontext() if cluster is not None or jobs < 2
                                   else WorkerPool(jobs))
        progress("reading logs")
        summary = ReadSummary()
        if max_events is None:
            frame = load_log([str(p) for p in logs], summary, pool=pool)
            frame, read = frame.reset_index(drop=True), None
        else:
            read = read_window([str(p) for p in logs], summary, max_events,
                               Path(tmp) / "partitions")
            frame = read.frame
            if read.windowed:
                progress(f"training on the newest {len(frame):,} of {read.events:,} records; "
                         "the online state learns them all")
        if frame.empty:
            raise ValueError("the logs hold no valid record")
        problem = tracking.result()
        if problem is not None:
            raise ValueError(f"the MLflow tracking store {uri} cannot be used: {problem}")
        checker.shutdown()
        features = Features.of(frame, summary.rejected, history=False)
        del frame
        options = Options(plots=True, holdout_losses=True)
        # The workers read the features from files while this process holds none of
        # them: a copy here during the whole evaluation was a third of the job's peak.
        stored = FeaturesFile.write(features, tmp, options)
        also: dict[str, Any] = {}
        if online:
            # The online state learns the whole log in a worker while the families are
            # evaluated; its parts are saved where this process registers them from (not
            # sent back whole). It reads the frame alone, so on this machine it starts now,
            # while this process computes the history features the families read.
            whole = read.partitions if read is not None and read.windowed else stored
            if pool is not None:
                also["online"] = start_task(pool, "online", functools.partial(
                    learn_online, whole, Path(tmp) / "online"))
            elif cluster is not None and whole is not stored:
                # The partitions are this machine's files, and the log is larger than
                # what one worker is sent: learned here while the cluster evaluates.
                threads = stack.enter_context(ThreadPoolExecutor(1))
                also["online"] = start_task(threads, "online", functools.partial(
                    learn_online, whole, Path(tmp) / "online"))
            else:  # a cluster's worker may be on a machine that cannot read the file
                also["online"] = functools.partial(
                    learn_online, stored if cluster is None else features.frame,
                    None if cluster else Path(tmp) / "online")
        # The families that read no history start now too, on the worker the online
        # state leaves free (it would wait for the history features otherwise).
        running = {family: start_family(pool, family, stored, options)
                   for family in EARLY} if pool is not None else {}
        progress("history features")
        stored = stored.with_history(features.with_history().history)
        del features
        release_freed_memory()
        # Once one task is left, the other worker's core is idle: what recording imports
        # (MLflow, the families' models its fits unpickle, plotting) is loaded meanwhile.
        recording: list[Future] = []
        preparer = stack.enter_context(ThreadPoolExecutor(1))
        evaluation = evaluate_features(
            stored, options, progress=progress, cluster=cluster, also=also or None, pool=pool,
            running=running, load_features=False,
            when_one_left=lambda finished: recording.append(preparer.submit(
                _prepare_recording, uri, experiment, finished)))
        if read is not None and read.windowed:
            evaluation.report = _with_window(evaluation.report, read, max_events)
        if pool is not None:
            pool.shutdown()  # idle, each still held what its last family read
        # Before the fits are unpickled here: two threads importing the same packages at
        # once can see one another's modules half initialized.
        client = recording[0].result() if recording else _prepare_recording(uri, experiment)
        # Loaded once the workers are gone: beside their idle memory, this copy took the job
        # near its peak.
        if isinstance(evaluation.features, FeaturesFile):
            evaluation.fetch_fits(evaluation.features)
            evaluation.features = evaluation.features.load()
        return _record(evaluation, logs, summary, chosen, policy, client, online, progress,
                       Path(tmp))


def tracking_problem(uri: str, experiment: str) -> str | None:
    """What keeps the MLflow tracking store at ``uri`` from recording ``experiment``
    (``None``: nothing); the experiment is created when missing."""
    try:
        _mlflow_client(uri, experiment)
    except Exception as err:  # whatever the store's client raises, said to the user
        return f"{type(err).__name__}: {err}"
    return None


def _prepare_recording(uri: str, experiment: str, after: int | None = None) -> Any:
    """Import what the record step needs, then MLflow's client (:func:`_mlflow_client`).

    ``after``: the process id of a worker that is exiting; the imports wait until it
    has (at most :data:`_EXIT_WAIT_S`), so that this process's growth does not add to
    its memory beside the last task's.
    """
    deadline = time.monotonic() + _EXIT_WAIT_S
    while after not in (None, os.getpid()) and _alive(after) and time.monotonic() < deadline:
        time.sleep(0.05)
    import mlflow.pyfunc  # noqa: F401 - imported here to be loaded, not used
    from mlflow.models import infer_signature  # noqa: F401

    from predictor.training.evaluate import _steps
    from predictor.training.plots import write_plots  # noqa: F401

    _steps()  # the families' modules: their fits are unpickled from the workers' files
    return _mlflow_client(uri, experiment)


#: Longest :func:`_prepare_recording` waits for an exiting worker, in seconds.
_EXIT_WAIT_S = 10.0


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still holds memory (exited processes waiting to be reaped,
    zombies, hold none)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # gone, or a system without /proc: nothing to wait for there
        return False


def _mlflow_client(uri: str, experiment: str) -> Any:
    """MLflow set to record ``experiment`` at ``uri`` (the registry too); its client."""
    import mlflow
    from mlflow import MlflowClient

    # The registry follows the tracking store, whatever an earlier caller set globally.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(mlflow.get_tracking_uri())
    mlflow.set_experiment(experiment)
    return MlflowClient()


def _with_window(report: dict[str, Any], read: WindowedLog, max_events: int | None
                 ) -> dict[str, Any]:
    """``report`` with ``"window"`` after its header: the records the families read were
    the newest ``max_events`` of a larger log."""
    header = [key for key in report if not isinstance(report[key], dict)]
    window = {"max_events": max_events, "log_events": read.events,
              "from_ts": float(read.frame["ts"].iloc[0])}
    return {**{key: report[key] for key in header}, "window": window,
            **{key: value for key, value in report.items() if key not in header}}


def _record(evaluation: Evaluation, logs: Sequence[str | Path], summary: ReadSummary,
            chosen: list[str], policy: str, client: Any, online: bool,
            progress: Callable[[str], None], tmp: Path) -> TrainResult:
    """The parent run, each family's register step, the promote step, the online state."""
    import mlflow

    from predictor.training.plots import write_plots
    from predictor.training.pyfunc import pip_requirements

    features = evaluation.features
    frame = features.frame
    report = evaluation.report
    pip = pip_requirements()
    example = _input_example(frame)
    with mlflow.start_run(run_name="train") as parent:
        mlflow.set_tag("predictor.step", "train")
        mlflow.log_input(_dataset(frame, logs), context="training")
        ts = frame["ts"]
        mlflow.log_params({
            "logs": ", ".join(str(p) for p in logs)[:500], "events": len(frame),
            "rejected": summary.rejected, "train_events": report["train_events"],
            "test_events": report["test_events"], "span_start": pd.Timestamp(ts.min(), unit="s"),
            "span_end": pd.Timestamp(ts.max(), unit="s"), "split_cut": features.split.cut,
            "families": ",".join(chosen), "promote": policy,
        })
        if "window" in report:  # the families read the newest records of a larger log
            mlflow.log_params({"max_events": report["window"]["max_events"],
                               "log_events": report["window"]["log_events"]})
        progress("plots")
        plots = write_plots(evaluation, tmp / "plots")
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        mlflow.log_dict(report, "evaluation.json")
        registered = []
        for family in chosen:
            progress(f"{family}: registering")
            entry = register(family, evaluation, plots, tmp, example, pip)
            registered.append(entry)
            progress(f"{family}: " + (f"version {entry.version}" if entry.version
                                      else f"skipped ({entry.reason})"))
        outcomes = promote_step(registered, features, policy, client)
        for outcome in outcomes:
            if outcome.version:
                progress(f"{outcome.family}: {'promoted' if outcome.promoted else 'kept'}: "
                         f"{outcome.reason}")
        result = TrainResult(parent.info.run_id, evaluation, outcomes)
        if online:
            result.online = _register_online(evaluation.also["online"], progress)
        return result


#: :func:`train`'s ``promote`` argument shadows the step inside it.
promote_step = promote


def learn_online(frame: pd.DataFrame | FeaturesFile | Partitions, folder: Path | None = None
                 ) -> Any:
    """The service's online state after learning every record of ``frame``, in time order.

    ``frame`` may be the features file of the job (its frame is learned), or
    a log's :class:`Partitions` (each learned in turn, one held at a time).
    The records are rebuilt from the frame one at a time as they are learned:
    the log's records are never all held at once. With ``folder``, the state
    is saved there family by family and a
    :class:`predictor.training.online.SavedEngine` returned, not the engine.
    """
    from predictor.engine import Engine
    from predictor.training.online import SavedEngine

    engine = Engine()
    if isinstance(frame, Partitions):
        engine.learn(record for part in frame.frames() for record in frame_records(part))
    else:
        if isinstance(frame, FeaturesFile):
            frame = frame.load(("frame",)).frame
        engine.learn(frame_records(frame))
    return engine if folder is None else SavedEngine.of(engine, folder)


def _register_online(engine: Any, progress: Callable[[str], None]) -> dict[str, str]:
    """The online state (:func:`learn_online`), registered per family."""
    from predictor.training.online import register_online

    progress(f"online: learned {engine.learned:,} records; registering checkpoints")
    versions = register_online(engine, source="train")
    progress("online: " + ", ".join(f"{f} v{v}" for f, v in versions.items()))
    return versions


def _plot_family(filename: str) -> str:
    if filename.startswith(("latency", "success")):
        return "performance"
    if filename.startswith("cache"):
        return "cache"
    if filename.startswith("load"):
        return "load"
    return ""


def outcome_rows(result: TrainResult) -> list[tuple[str, str, str, str]]:
    """(family, version, promoted, why) rows for the final table."""
    return [(o.family, o.version or "-", "yes" if o.promoted else "no", o.reason)
            for o in result.families]

