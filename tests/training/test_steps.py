"""Training's steps hand typed results on: features once, fit, score."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from predictor.data.frame import records_to_frame
from predictor.data.schema import parse_record
from predictor.data.simulator import Simulator
from predictor.training.bundles import PerformanceBundle, RiskBundle
from predictor.training.eval_performance import PerformanceFit, fit_performance
from predictor.training.evaluate import evaluate_features, run_family
from predictor.training.features import Features, Options, Unsupported


@pytest.fixture(scope="module")
def features() -> Features:
    records = sorted(map(parse_record, Simulator(seed=4).records(6000)), key=lambda r: r.epoch)
    return Features.of(records_to_frame(records))


def test_features_are_computed_once_and_split_the_calls(features):
    assert len(features.history) == len(features.calls)
    assert (features.train ^ features.test).all()
    # The split is by time: every test call starts after every training call.
    ts = features.calls["ts"].to_numpy()
    assert ts[features.train].max() < ts[features.test].min()


def test_a_fit_is_typed_and_carries_the_bundle_training_registers(features):
    fit = fit_performance(features)
    assert isinstance(fit, PerformanceFit)
    assert isinstance(fit.bundle, PerformanceBundle)
    loss = fit.bundle.loss(features.frame, features.split.test_mask, features.history)
    assert loss == pytest.approx(fit.bundle.loss(features.frame, features.split.test_mask))


def test_model_inputs_built_in_chunks_are_the_whole_matrix(features, monkeypatch):
    """Performance and resources read every call's inputs a chunk at a time, and fit on
    their rows' inputs alone; risk writes its inputs column by column: each the matrix as
    a whole."""
    from predictor.models import features as call_features
    from predictor.training import eval_risk

    calls, history, test = features.calls, features.history, features.test
    featurizer = fit_performance(features).featurizer
    whole = featurizer.transform(calls, history)
    monkeypatch.setattr(call_features, "CHUNK_CALLS", 1000)  # 6 chunks, the last short
    chunks = list(featurizer.chunks(calls, history))
    assert [len(chunk) for chunk in chunks][-2:] == [1000, len(calls) % 1000 or 1000]
    np.testing.assert_array_equal(np.vstack(chunks), whole)  # NaN where NaN
    rows = features.fit_mask()
    np.testing.assert_array_equal(featurizer.transform(calls[rows], history), whole[rows])
    kept = np.empty((int(test.sum()), whole.shape[1]))
    inputs = list(featurizer.stream(calls, history, keep=test, kept=kept))
    np.testing.assert_array_equal(np.vstack([ids for ids, _ in inputs]),
                                  featurizer.sparse(whole)[0])
    np.testing.assert_array_equal(np.vstack([values for _, values in inputs]),
                                  featurizer.sparse(whole)[1])
    np.testing.assert_array_equal(kept, whole[test])
    # Another index for the history than the calls' (a frame's rows, not only calls).
    shuffled = history.sample(frac=1.0, random_state=0)
    np.testing.assert_array_equal(np.vstack(list(featurizer.chunks(calls, shuffled))), whole)
    X, names = eval_risk._matrix(calls, shuffled)
    stacked = np.column_stack([history[list(eval_risk.RISK_FEATURES)].to_numpy(float),
                               calls["concurrency"].to_numpy(float),
                               calls["attempt"].to_numpy(float)])
    np.testing.assert_array_equal(X, stacked)
    assert names == [*eval_risk.RISK_FEATURES, "concurrency", "attempt"]


def test_a_family_run_drops_its_workspace_and_keeps_the_model(features):
    run = run_family("risk", features, Options())
    assert "roc_auc" in run.section
    assert run.fit.failed is None and run.fit.online is None and run.fit.pending is None
    assert isinstance(run.fit.bundle, RiskBundle)
    assert run.section["variant"] == run.fit.variant
    # Its peak memory, measured in the process that ran it (pandas alone holds ~50 MB).
    assert run.peak_mb > 50


def test_a_log_that_cannot_support_a_family_says_why(features):
    no_keys = Features.of(features.frame.assign(cache_key=None))
    run = run_family("cache", no_keys, Options())
    assert run.fit is None
    assert run.section == {"reason": "too few cache_key accesses on one side of the time split"}
    with pytest.raises(Unsupported):
        from predictor.training.eval_cache import fit_cache

        fit_cache(no_keys)


def test_evaluation_holds_one_fit_per_supported_family(features):
    evaluation = evaluate_features(features, n_jobs=1)
    supported = {f for f, section in evaluation.report.items()
                 if isinstance(section, dict) and "reason" not in section}
    assert set(evaluation.fits) == supported
    assert evaluation.fits["selection"].bundle is None


def test_a_holdout_loss_is_the_error_of_the_predictions_over_every_call(features):
    """The loss predicts the holdout's calls only; it equals scoring them among all calls."""
    import numpy as np

    from predictor.training.metrics import mae

    bundle = fit_performance(features).bundle
    test = features.split.test_mask
    every = bundle.predict(features.frame, features.history)  # one row per call of the log
    held = features.calls[features.test]
    expected = mae(held["latency_ms"].to_numpy(float),
                   every.loc[held.index, "latency_p50_ms"].to_numpy())
    assert bundle.loss(features.frame, test, features.history) == expected
    assert np.isfinite(expected) and expected > 0
    # Resources' loss reads the point duration alone, exactly as predict() gives it.
    from predictor.training.eval_resources import fit_resources

    resources = fit_resources(features).bundle
    every = resources.predict(features.frame, features.history)
    assert {"duration_ms", "duration_low_ms"} <= set(every.columns)
    expected = mae(held["latency_ms"].to_numpy(float),
                   every.loc[held.index, "duration_ms"].to_numpy())
    assert resources.loss(features.frame, test, features.history) == expected
    assert np.isfinite(expected) and expected > 0


def test_a_family_computes_its_holdout_loss_as_the_register_step_would(features):
    """Training asks each per-call family for its bundle's holdout loss where it ran (from
    the calls and history it holds): the same loss as from the whole frame."""
    from predictor.training.evaluate import HOLDOUT_LOSSES

    evaluation = evaluate_features(features, Options(holdout_losses=True), n_jobs=1)
    assert set(evaluation.losses) == set(HOLDOUT_LOSSES) & set(evaluation.fits)
    assert {"performance", "resources", "risk"} <= set(evaluation.losses)
    for family, loss in evaluation.losses.items():
        bundle = evaluation.fits[family].bundle
        assert loss == bundle.loss(features.frame, features.split.test_mask,
                                   features.history), family
    assert evaluate_features(features, n_jobs=1).losses == {}  # evaluate alone: none


def test_the_served_risk_replay_answers_alike_without_the_online_model(features):
    """With the batch classifier answering, the online model's learning changes no answer."""
    from predictor.api.risk import RiskRequest
    from predictor.data.frame import frame_records
    from predictor.training.eval_risk import fit_risk
    from predictor.training.served import replay, served_engine

    batch = fit_risk(features).model

    def answers(online_while_batch: bool) -> tuple[list[float], int]:
        engine = served_engine(("risk",))
        assessor = engine.plugin("risk")
        assessor.use_batch(batch, "test")
        assessor.online_while_batch = online_while_batch
        out = [assessor.assess(RiskRequest(server=call.server, tool=call.tool, ts=call.epoch,
                                           concurrency=call.concurrency,
                                           attempt=call.attempt)).failure_probability
               for _, call in replay(engine, frame_records(features.frame))]
        return out, assessor.model.learned

    served, learned = answers(online_while_batch=True)  # the service: it learns on
    replayed, skipped = answers(online_while_batch=False)  # the evaluation's replay
    assert len(served) == len(features.calls)
    assert replayed == served
    assert learned and not skipped


def test_the_features_file_reads_back_equal_and_refuses_a_replaced_file(features, tmp_path):
    """Workers read the features from a file checked with a key only this job holds."""
    import pandas as pd

    from predictor.training.features import FeaturesFile

    stored = FeaturesFile.write(features, tmp_path)
    loaded = stored.load()
    pd.testing.assert_frame_equal(loaded.frame, features.frame)
    pd.testing.assert_frame_equal(loaded.history, features.history)
    pd.testing.assert_frame_equal(loaded.calls, features.calls)  # rebuilt from the frame
    # String columns come back as the same values and types (None stays None, not NaN).
    for name in ("server", "error_type", "cache_key", "attrs"):
        assert loaded.frame[name].dtype == object
        assert [(type(v), v) for v in loaded.frame[name]] == \
            [(type(v), v) for v in features.frame[name]]
    assert (loaded.test == features.test).all()
    # Calls that are not the frame's calls (a caller's own) are stored as they are.
    odd = replace(features, calls=features.calls.iloc[::2], history=features.history.iloc[::2])
    (tmp_path / "odd").mkdir()
    pd.testing.assert_frame_equal(FeaturesFile.write(odd, tmp_path / "odd").load().calls,
                                  odd.calls)
    assert stored.summary["calls"] == len(features.calls)
    assert stored.summary["test_events"] == int(features.split.test_mask.sum())
    # A task writing into its copy leaves the file as it was.
    loaded.frame.loc[loaded.frame.index[:5], "latency_ms"] = -1.0
    assert (stored.load().frame["latency_ms"].to_numpy()[:5] != -1.0).all()
    # A file written by anyone else (same content and format, another key) is refused.
    (tmp_path / "other").mkdir()
    other = FeaturesFile.write(Features.of(features.frame.head(500)), tmp_path / "other")
    Path(stored.path).write_bytes(Path(other.path).read_bytes())
    with pytest.raises(ValueError, match="not the features file"):
        stored.load()


def test_an_evaluation_given_the_features_file_reports_as_given_the_features(features,
                                                                              tmp_path):
    from predictor.training.features import FeaturesFile

    direct = evaluate_features(features, n_jobs=1).report
    stored = FeaturesFile.write(features, tmp_path)
    evaluation = evaluate_features(stored, n_jobs=2)
    assert evaluation.report == direct
    assert len(evaluation.features.calls) == len(features.calls)


def test_an_evaluation_that_leaves_the_features_in_their_file_keeps_its_fits_there(
        features, tmp_path):
    """Training reads the fits back once its workers are stopped: a fitted model can hold
    a hundred MB, which its main process then does not hold beside them."""
    from predictor.training.features import FeaturesFile, Kept

    stored = FeaturesFile.write(features, tmp_path)
    evaluation = evaluate_features(stored, n_jobs=2, load_features=False)
    assert evaluation.features is stored
    assert set(evaluation.fits) >= {"performance", "cache"}
    assert all(isinstance(fit, Kept) for fit in evaluation.fits.values())
    evaluation.fetch_fits(stored)
    kept = {family: type(fit).__name__ for family, fit in evaluation.fits.items()}
    assert kept["performance"] == "PerformanceFit" and kept["cache"] == "CacheFit"
    direct = evaluate_features(features, n_jobs=1)
    assert {family: type(fit).__name__ for family, fit in direct.fits.items()} == kept
    assert evaluation.report == direct.report
    # A kept file replaced by anyone else is refused.
    other = stored.keep("other", {"x": 1})
    Path(other.path).write_bytes(Path(other.path).read_bytes() + b"\0")
    with pytest.raises(ValueError, match="not the features file"):
        stored.fetch(other)


def test_the_features_file_keeps_an_index_that_is_not_a_range(features, tmp_path):
    import pandas as pd

    from predictor.training.features import FeaturesFile

    frame = features.frame.set_axis(features.frame.index * 3 + 7)
    calls = features.calls.set_axis(features.calls.index * 3 + 7)
    odd = replace(features, frame=frame, calls=calls)
    loaded = FeaturesFile.write(odd, tmp_path).load()
    pd.testing.assert_frame_equal(loaded.frame, frame)
    pd.testing.assert_frame_equal(loaded.calls, calls)
def test_freed_small_objects_are_given_back_to_the_system():
    from predictor.training.evaluate import release_freed_memory

    def resident_mb() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096 / 2**20

    # 1,000-byte objects live in the C heap; keeping every tenth pins the heap's top, so
    # freeing the others leaves their pages resident until they are handed back.
    blocks = [bytes(1000) + i.to_bytes(4, "little") for i in range(150_000)]
    kept = blocks[::10]
    del blocks
    before = resident_mb()
    assert release_freed_memory()
    assert before - resident_mb() > 50
    assert len(kept) == 15_000


def test_a_task_holds_only_the_parts_its_family_reads(features, tmp_path):
    import pandas as pd

    from predictor.training.evaluate import READS
    from predictor.training.features import PARTS, FeaturesFile, NotLoaded

    stored = FeaturesFile.write(features, tmp_path)
    calls_only = stored.load(("calls",))
    # The calls are built from the stored columns without the frame, equal to the frame's.
    pd.testing.assert_frame_equal(calls_only.calls, features.calls)
    assert isinstance(calls_only.frame, NotLoaded) and isinstance(calls_only.history, NotLoaded)
    with pytest.raises(RuntimeError, match=r"features\.frame was not loaded"):
        calls_only.frame["ts"]
    with pytest.raises(RuntimeError, match=r"features\.history was not loaded"):
        len(calls_only.history)
    frame_only = stored.load(("frame",))
    pd.testing.assert_frame_equal(frame_only.frame, features.frame)
    assert isinstance(frame_only.calls, NotLoaded)
    pd.testing.assert_frame_equal(stored.load(("history",)).history, features.history)
    with pytest.raises(ValueError, match="unknown parts"):
        features.only(("frames",))
    # Only some columns: those are unpickled and held, in the frame's order.
    narrow = stored.load(PARTS, {"frame": ("cache_key", "ts"), "calls": ("cache_key", "ts"),
                                 "history": ("srv_latency", "hist_latency")})
    pd.testing.assert_frame_equal(narrow.calls, features.calls[["ts", "cache_key"]])
    pd.testing.assert_frame_equal(narrow.frame, features.frame[["ts", "cache_key"]])
    pd.testing.assert_frame_equal(narrow.history,
                                  features.history[["hist_latency", "srv_latency"]])
    with pytest.raises(KeyError, match="server"):
        narrow.calls["server"]
    with pytest.raises(KeyError, match="probe_cpu"):
        narrow.history["probe_cpu"]
    pd.testing.assert_frame_equal(
        features.only(("calls",), {"calls": ("cache_key", "ts")}).calls, narrow.calls)
    # The whole frame, and the calls of some columns; or the other way round.
    calls_narrow = stored.load(("frame", "calls"), {"calls": ("server", "ts")})
    pd.testing.assert_frame_equal(calls_narrow.frame, features.frame)
    pd.testing.assert_frame_equal(calls_narrow.calls, features.calls[["ts", "server"]])
    frame_narrow = stored.load(("frame", "calls"), {"frame": ("ts",)})
    pd.testing.assert_frame_equal(frame_narrow.frame, features.frame[["ts"]])
    pd.testing.assert_frame_equal(frame_narrow.calls, features.calls)
    # Every family reads what it names, and not everything (the cache reads the calls).
    assert READS["cache"] == ("calls",)
    assert {family: run_family(family, features, Options()).section.get("reason")
            for family in READS} == dict.fromkeys(READS)


def test_a_family_that_reads_a_part_it_does_not_name_fails_saying_which(features,
                                                                       monkeypatch):
    from predictor.training import evaluate

    monkeypatch.setitem(evaluate.READS, "risk", ("calls", "history"))
    section = run_family("risk", features, Options()).section
    assert "features.frame was not loaded" in section["reason"]


def test_a_family_that_reads_a_column_it_does_not_name_fails_saying_which(features,
                                                                         monkeypatch):
    from predictor.training import evaluate

    monkeypatch.setitem(evaluate.COLUMNS, "cache", {"calls": ("ts", "kind")})
    assert "KeyError: 'cache_key'" in run_family("cache", features, Options()).section["reason"]


def test_the_evaluation_stops_its_idle_workers(features, tmp_path):
    import os

    from predictor.training.features import FeaturesFile

    def children() -> set[int]:
        found = set()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    state, parent = stat.read().rsplit(")", 1)[1].split()[:2]
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    command = cmdline.read()
            except OSError:
                continue
            # Workers, not the resource tracker (it lives as long as this process).
            if int(parent) == os.getpid() and state != "Z" and b"spawn_main" in command:
                found.add(int(pid))
        return found

    from predictor.training.workers import WorkerPool

    with WorkerPool(2) as pool:  # what the test looks for is what a pool starts
        assert pool.submit(os.getppid).result() == os.getpid()
        assert children()
    evaluation = evaluate_features(FeaturesFile.write(features, tmp_path), n_jobs=2)
    assert "reason" not in evaluation.report["cache"]
    # The workers held what their last family read; training registers models after.
    assert not children()


def test_the_frame_is_written_before_the_history_features_and_read_without_them(features,
                                                                                tmp_path):
    """Training starts learning the online state from the frame while this process
    computes the history features: the file is readable before they are written."""
    import pandas as pd

    from predictor.training.features import Features, FeaturesFile

    early = Features.of(features.frame, history=False)
    stored = FeaturesFile.write(early, tmp_path)
    pd.testing.assert_frame_equal(stored.load(("frame",)).frame, features.frame)
    with pytest.raises(ValueError, match="not written yet"):
        stored.load()
    (tmp_path / "whole").mkdir()
    assert stored.summary == FeaturesFile.write(features, tmp_path / "whole").summary
    complete = stored.with_history(early.with_history().history)
    pd.testing.assert_frame_equal(complete.load().history, features.history)
    # The history's file is checked like the rest.
    Path(complete.history_path).write_bytes(Path(complete.history_path).read_bytes() + b"x")
    with pytest.raises(ValueError, match="not the features file"):
        complete.load(("history",))
    assert isinstance(complete.load(("calls",)).calls, pd.DataFrame)  # the rest still reads


def test_a_job_that_fails_stops_its_workers_without_waiting_for_their_tasks():
    import time

    from predictor.training.workers import WorkerPool

    with pytest.raises(ZeroDivisionError), WorkerPool(2) as pool:
        sleeper = pool.submit(time.sleep, 60)
        pool.submit(divmod, 1, 0).result()
    # Killed with its worker, not waited for (it would have finished with None).
    assert sleeper.done() and sleeper.exception() is not None


def test_a_family_that_reads_no_history_starts_before_it_is_computed(features, tmp_path):
    """Training starts the families of ``EARLY`` on the features file written before the
    history features: the evaluation waits for them with the rest, and the report and
    fits are those of an evaluation that started them itself."""
    from predictor.training.evaluate import start_family
    from predictor.training.families import EARLY, READS
    from predictor.training.features import Features, FeaturesFile
    from predictor.training.workers import WorkerPool

    assert EARLY and all("history" not in READS[family] for family in EARLY)
    options = Options(holdout_losses=True)
    early = FeaturesFile.write(Features.of(features.frame, history=False), tmp_path, options)
    with WorkerPool(2) as pool:
        running = {family: start_family(pool, family, early, options) for family in EARLY}
        complete = early.with_history(Features.of(features.frame).history)
        finished: list[str] = []
        one_left: list[tuple[int, int]] = []  # (tasks finished, the last one's process)
        evaluation = evaluate_features(complete, options, pool=pool, running=running,
                                       load_features=False, progress=finished.append,
                                       when_one_left=lambda pid: one_left.append((len(
                                           [m for m in finished if "fitted in" in m]), pid)))
    assert all(future.done() for future in running.values())
    # Called once, when the workers had one family left of the six, with the process id of
    # the worker that ran the fifth (not this process).
    assert [done for done, _ in one_left] == [5]
    assert len([m for m in finished if "fitted in" in m]) == 6
    assert isinstance(one_left[0][1], int) and one_left[0][1] != os.getpid()
    evaluation.fetch_fits(complete)
    (tmp_path / "whole").mkdir()
    whole = evaluate_features(FeaturesFile.write(features, tmp_path / "whole", options),
                              options, n_jobs=2)
    assert evaluation.report == whole.report
    assert list(evaluation.report) == list(whole.report)  # the contract's order
    for family in EARLY:  # fetched from the job's folder like the rest
        assert type(evaluation.fits[family]) is type(whole.fits[family])


def _worker_state() -> tuple[str | None, bool]:
    import os
    import sys

    return os.environ.get("OMP_NUM_THREADS"), "predictor.training.eval_scaling" in sys.modules


def test_an_evaluation_pool_forks_workers_that_start_with_the_families_imported():
    """``predictor evaluate``'s workers come from a server that imported the families'
    modules once, started with a worker's thread limits; this process's own environment
    is left as it was."""
    import os

    from predictor.training.evaluate import WORKER_MODULES
    from predictor.training.workers import WorkerPool, thread_limits

    before = dict(os.environ)
    with WorkerPool(2, preload=WORKER_MODULES) as pool:
        threads, imported = pool.submit(_worker_state).result()
        assert pool.submit(os.getpid).result() != os.getpid()
    assert threads == thread_limits(2)["OMP_NUM_THREADS"] and imported
    assert dict(os.environ) == before
