"""The compiled prequential passes give what the per-call replay gives, call for call."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predictor.data.frame import records_to_frame
from predictor.data.schema import parse_record
from predictor.data.simulator import Simulator
from predictor.models import features as call_features
from predictor.models.delay import LabelDelay, finish_time, release_schedule
from predictor.models.features import CallFeaturizer
from predictor.models.history import call_features as history_of
from predictor.models.performance import TARGET_BASES, OnlinePerformance
from predictor.models.resources import OnlineResources


def test_the_release_schedule_is_what_a_label_delay_releases() -> None:
    rng = np.random.default_rng(5)
    starts = np.sort(rng.integers(0, 400, 3000)).astype(float)  # many equal starts
    latency = rng.choice([np.nan, 0.0, 500.0, 2000.0, 90_000.0], 3000)
    ends = np.array([finish_time(t, lat) for t, lat in zip(starts, latency, strict=True)])
    delay: LabelDelay[int] = LabelDelay()
    released, when = [], np.full(len(starts), len(starts))
    for i, start in enumerate(starts):
        for done in delay.ready(start):
            released.append(done)
            when[done] = i
        delay.add(ends[i], i)
    release, order = release_schedule(starts, ends)
    np.testing.assert_array_equal(release, when)
    assert order[:len(released)].tolist() == released
    assert (release[order[len(released):]] == len(starts)).all()  # never released


@pytest.fixture(scope="module")
def calls() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = records_to_frame([parse_record(r) for r in Simulator(seed=4).records(6000)])
    frame = frame.reset_index(drop=True)
    # Unknown outcomes and long calls, which wait several chunks to be learned.
    called = frame.index[frame["kind"] != "health"]
    frame.loc[called[::17], "latency_ms"] = np.nan
    frame.loc[called[::23], "success"] = np.nan
    frame.loc[called[5::97], "latency_ms"] = 600_000.0
    history = history_of(frame)
    return frame.loc[called], history


def test_sparse_inputs_are_the_dicts(calls: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    frame, history = calls
    for spec_only in (False, True):
        featurizer = CallFeaturizer(max_categories=6, spec_only=spec_only).fit(
            frame.iloc[:3000], history)
        matrix = featurizer.transform(frame, history)
        ids, values = featurizer.sparse(matrix)
        names = featurizer.input_names()
        rebuilt = [{names[i]: v for i, v in zip(row_ids, row_values, strict=True) if i >= 0}
                   for row_ids, row_values in zip(ids.tolist(), values.tolist(), strict=True)]
        dicts = list(featurizer.dicts(matrix))
        assert [list(x) for x in rebuilt] == [list(x) for x in dicts]  # the same order
        assert rebuilt == dicts
        assert any(name.startswith("tool=") for name in dicts[0])


def _replayed(model, calls: pd.DataFrame, dicts: list[dict], learn, predict,
              test: np.ndarray) -> list:
    """The per-call replay: predict each test call, learn each call once it finished."""
    delay: LabelDelay = LabelDelay()
    answers = []
    for i, (start, latency) in enumerate(zip(calls["ts"], calls["latency_ms"], strict=True)):
        for done in delay.ready(start):
            learn(model, done)
        if test[i]:
            answers.append(predict(model, dicts[i]))
        delay.add(finish_time(start, latency), i)
    return answers


def test_the_performance_pass_answers_as_the_per_call_replay(
        calls: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: pytest.MonkeyPatch) -> None:
    frame, history = calls
    featurizer = CallFeaturizer(max_categories=6).fit(frame.iloc[:3000], history)
    dicts = list(featurizer.dicts(featurizer.transform(frame, history)))
    y = {name: frame[name].to_numpy(float)
         for name in ("latency_ms", "success", "output_tokens", "cost_usd")}
    test = np.zeros(len(frame), dtype=bool)
    test[1000:] = True
    test[2000:2500] = False

    def learn(model: OnlinePerformance, i: int) -> None:
        model.learn_one(dicts[i], {name: column[i] for name, column in y.items()})

    expected = _replayed(OnlinePerformance(), frame, dicts, learn,
                         lambda model, x: model.predict_one(x), test)
    monkeypatch.setattr(call_features, "CHUNK_CALLS", 700)  # chunks the long calls outlive
    tools = featurizer.codes(frame, "tool")
    model = OnlinePerformance()
    got = model.learn_predict(
        featurizer.stream(frame, history), featurizer.input_names(), y,
        {target: featurizer.history_input(frame, history, feature)
         for target, feature in TARGET_BASES.items() if feature is not None},
        np.where(np.isnan(tools), -1, tools).astype(np.int64),
        sorted(featurizer.vocab_["tool"], key=featurizer.vocab_["tool"].get),
        frame["ts"].to_numpy(float), test)
    assert set(got) == set(expected[0])
    for name in got:
        np.testing.assert_array_equal(got[name], [answer[name] for answer in expected])
    # The model after the pass is the model after the replay: it goes on alike.
    replayed = OnlinePerformance()
    _replayed(replayed, frame, dicts, learn, lambda model, x: None, test)
    assert model.predict_one(dicts[-1]) == replayed.predict_one(dicts[-1])
    assert model._stack.weights(0) == replayed._stack.weights(0)


def test_the_resources_pass_answers_as_the_per_call_replay(
        calls: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: pytest.MonkeyPatch) -> None:
    frame, history = calls
    featurizer = CallFeaturizer(max_categories=6, spec_only=True).fit(frame.iloc[:3000],
                                                                      history)
    dicts = list(featurizer.dicts(featurizer.transform(frame, history)))
    duration = frame["latency_ms"].to_numpy(float)
    test = np.zeros(len(frame), dtype=bool)
    test[::3] = True  # the first calls too: answered by the prior

    def learn(model: OnlineResources, i: int) -> None:
        model.learn_one(dicts[i], duration[i])

    expected = _replayed(OnlineResources(), frame, dicts, learn,
                         lambda model, x: model.predict_one(x), test)
    monkeypatch.setattr(call_features, "CHUNK_CALLS", 500)
    model = OnlineResources()
    got = model.learn_predict(featurizer.stream(frame, history), featurizer.input_names(),
                              duration, frame["ts"].to_numpy(float), test)
    assert got[0] == 1000.0
    np.testing.assert_array_equal(got, expected)
    replayed = OnlineResources()
    _replayed(replayed, frame, dicts, learn, lambda model, x: None, test)
    assert model._n == replayed._n
    assert model._stack.weights(0) == replayed._stack.weights(0)
