"""Selection figures: the replay method (Li et al., WSDM 2011) on a log.

Walking the test part in time order, at each call of a task type that
several servers have served, each policy picks a server from what it knows
at that moment. Where its pick is the server the log shows, the call is one
of that policy's decisions and its latency and success are the reward. With
a logging policy that picked servers at random, this is an unbiased
estimate of how each policy would have done.

Every policy sees the same telemetry (the log's finished calls and health
probes, via :class:`predictor.models.history.History`):

* ``model``: the batch performance model, trained on the training part,
  scores each candidate from its features at that moment and picks the
  lowest expected time to a success, ``p50 latency / P(success)``;
* ``ewma``: the lowest per-(server, tool) moving-average latency, what
  latency-based routers do (servers not yet seen are tried first);
* ``random``: uniform among the candidates;
* ``best_fixed``: per task type, the one server with the lowest mean latency
  over the test part, in hindsight;
* ``served``: the select decision as the service builds it (the engine's
  selector with its cooldowns, the default weights and exploration),
  replayed over the whole log: it learns every call once it has finished
  and every health probe, as ``predictor serve`` does.

A failed call counts against success and costs its latency, or the seed's
30 s timeout when the log has none. ``mean_cost_usd`` is the mean logged
cost of each policy's decisions, where the log has costs. ``all_rounds``
scores ``served``, ``ewma`` and ``random`` over every round, training part
included.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from predictor.api.select import DEFAULT_WEIGHTS, SelectRequest
from predictor.data.frame import frame_records
from predictor.models.delay import LabelDelay, finish_time
from predictor.models.features import CallFeaturizer
from predictor.models.history import HISTORY_FEATURES, History
from predictor.models.performance import BatchPerformance
from predictor.training.features import Features, Options, Unsupported
from predictor.training.metrics import rounded
from predictor.training.served import frame_columns, replay, served_engine

__all__ = ["FRAME_COLUMNS", "MAX_CANDIDATES", "TIMEOUT_MS", "SelectionFit", "fit_selection",
           "score_selection", "with_task_types"]

MAX_CANDIDATES = 10
#: What a failed call without a recorded latency costs (the seed's 30 s timeout).
TIMEOUT_MS = 30_000.0


def _candidate_frames(calls: pd.DataFrame, frame: pd.DataFrame,
                      candidates: dict[str, list[str]], test_index: set[int]
                      ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, list[tuple]]]:
    """Rows for every (test call, candidate server), with history as of that call.

    Yields them ``_ROWS_AT_ONCE`` rows at a time, in time order: the calls'
    rows, their history features and their (call index, candidate) owners.
    The rows of the whole test part at once (a copy of each call per
    candidate, its features, then the model's inputs) were this family's
    peak memory on large logs (2.2 GB on a million events).
    """
    history = History()
    names = list(HISTORY_FEATURES)
    rows: list[tuple] = []
    owners: list[tuple] = []  # (call index, candidate server)

    def chunk() -> tuple[pd.DataFrame, pd.DataFrame, list[tuple]]:
        cand = calls.loc[[idx for idx, _ in owners]].reset_index(drop=True)
        cand["server"] = [server for _, server in owners]
        hist = pd.DataFrame(np.array(rows, dtype=float), index=cand.index, columns=names)
        return cand, hist, list(owners)

    cols = [frame[c].to_numpy() for c in ("ts", "kind", "server", "tool", "latency_ms",
                                           "success", "output_tokens", "concurrency",
                                           "reachable", "cpu_pct", "mem_pct", "queue_depth",
                                           "task_type")]
    for idx, (ts, kind, server, tool, lat, ok, out, conc, reach, cpu, mem, queue, task) in zip(
        frame.index, zip(*cols, strict=True), strict=True
    ):
        if kind == "health":
            history.observe_health(ts, server, reachable=reach, latency_ms=lat, cpu_pct=cpu,
                                   mem_pct=mem, queue_depth=queue)
            continue
        if idx in test_index and isinstance(task, str) and len(candidates.get(task, ())) > 1:
            for cand in candidates[task]:
                rows.append(history.values(ts, cand, tool))
                owners.append((idx, cand))
            if len(rows) >= _ROWS_AT_ONCE:
                yield chunk()
                rows.clear()
                owners.clear()
        history.observe_call(ts, server, tool, latency_ms=lat, success=ok, output_tokens=out,
                             concurrency=conc)
    if rows:
        yield chunk()


#: The columns of the log (``features.frame``) this family reads: the records of the
#: served replay (:func:`frame_columns`), each candidate's history
#: (:func:`_candidate_frames`), the rewards and the task types; ``None``: every column
#: (a plug-in that does not say what it reads).
FRAME_COLUMNS = frame_columns(("select",), {
    "ts", "kind", "server", "tool", "task_type", "latency_ms", "success", "cost_usd",
    "output_tokens", "concurrency", "reachable", "cpu_pct", "mem_pct", "queue_depth"})

#: Candidate rows :func:`_candidate_frames` yields at once.
_ROWS_AT_ONCE = 65_536


class Rewards:
    """The rewards of one policy's matched picks: each call's latency, success and cost, in
    the order matched.

    Three columns of floats: a tuple per reward held about 130 bytes, on a
    million-event log over 100 MB for the three policies of all rounds.

    >>> rewards = Rewards()
    >>> rewards.append(120.0, 1.0, math.nan)
    >>> len(rewards), rewards.latency.tolist()
    (1, [120.0])
    """

    __slots__ = ("cost", "latency", "success")

    def __init__(self) -> None:
        self.latency, self.success, self.cost = array("d"), array("d"), array("d")

    def append(self, latency: float, success: float, cost: float) -> None:
        """One matched pick's reward."""
        self.latency.append(latency)
        self.success.append(success)
        self.cost.append(cost)

    def __len__(self) -> int:
        return len(self.latency)


@dataclass(frozen=True)
class SelectionFit:
    """The candidate servers of each task type, the rounds and test calls to replay, and the
    batch model that scores candidates (the ``model`` policy)."""

    candidates: dict[str, list[str]]
    rounds: np.ndarray
    eligible: np.ndarray
    featurizer: CallFeaturizer
    model: BatchPerformance
    bundle: None = None  # nothing is registered: ``performance`` is the registered model


def with_task_types(features: Features) -> Features:
    """``features`` with each call that names no ``task_type`` asking for its ``tool``.

    What the gateway records for a route without one (DESIGN: ``task_type``
    defaults to the tool name): a log without task types is then judged on
    the tools several servers serve, as a router of those tools would pick.
    Calls that name a task type keep it; a log where every call names one
    is returned as it is.

    >>> from predictor.data.frame import records_to_frame
    >>> from predictor.data.schema import parse_record
    >>> frame = records_to_frame([parse_record({"ts": 0.0, "server": "a", "tool": "q"}),
    ...                           parse_record({"ts": 1.0, "server": "b", "tool": "q",
    ...                                         "task_type": "search"})])
    >>> with_task_types(Features.of(frame)).calls["task_type"].tolist()
    ['q', 'search']
    """
    calls = features.calls
    missing = calls["task_type"].isna()
    if not missing.any():
        return features
    rows = missing[missing].index
    task_type = features.frame["task_type"].copy()
    task_type.loc[rows] = features.frame.loc[rows, "tool"]
    # Shallow copies with that one column replaced: a deep copy of the frame and of its
    # calls was most of this family's memory on large logs (the other columns are shared,
    # and copy-on-write keeps the originals as they are).
    frame = features.frame.copy(deep=False)
    frame["task_type"] = task_type
    calls = calls.copy(deep=False)
    calls["task_type"] = task_type.loc[calls.index]
    return replace(features, frame=frame, calls=calls)


def _candidates(calls: pd.DataFrame, train: np.ndarray) -> dict[str, list[str]]:
    """The servers that served each task type in training, at most the MAX_CANDIDATES busiest
    (a routing decision weighs a handful, not hundreds)."""
    known = calls[train & calls["task_type"].notna().to_numpy()]
    served = known.groupby("task_type")["server"].value_counts()
    candidates = {}
    for task_type, counts in served.groupby(level=0):
        servers = sorted(counts.droplevel(0).index[:MAX_CANDIDATES])
        if len(servers) > 1:
            candidates[task_type] = servers
    return candidates


def fit_selection(features: Features, options: Options | None = None) -> SelectionFit:
    """Find the candidates and the scorable rounds; fit the ``model`` policy's batch model."""
    features = with_task_types(features)
    calls, history, train, test = (features.calls, features.history, features.train,
                                   features.test)
    task = calls["task_type"]
    candidates = _candidates(calls, train)
    # A call can be scored when its latency is known or it failed (a failure costs its
    # latency, or the timeout); only calls whose logged server is a candidate can match.
    scorable = (calls["latency_ms"].notna() | (calls["success"] == 0.0)).to_numpy()
    rounds = scorable & task.isin(list(candidates)).to_numpy() & np.array(
        [s in candidates.get(t, ()) for t, s in zip(task, calls["server"], strict=True)],
        dtype=bool)
    eligible = test & rounds
    if not candidates or eligible.sum() < 20:
        raise Unsupported("no task_type served by several servers with latency in both parts")
    featurizer = CallFeaturizer(spec_only=True).fit(calls[train], history)
    y = {n: calls[n].to_numpy(float) for n in ("latency_ms", "success", "output_tokens",
                                                "cost_usd")}
    rows = features.fit_mask(options)
    # The model policy ranks by median latency over success: the other boosters of a
    # performance model would be fitted for nothing (nothing here is registered). Only
    # the rows fitted on are featurized: a row's inputs read its call and history alone.
    model = BatchPerformance(categorical=featurizer.categorical_mask,
                             targets=("latency_p50_ms", "success")).fit(
        featurizer.transform(calls[rows], history), latency_ms=y["latency_ms"][rows],
        success=y["success"][rows],
        output_tokens=y["output_tokens"][rows], cost_usd=y["cost_usd"][rows],
        feature_names=featurizer.feature_names_)
    return SelectionFit(candidates, rounds, eligible, featurizer, model)


def score_selection(features: Features, fit: SelectionFit, options: Options | None = None,
                    seed: int = 0) -> tuple[dict, None]:
    """The ``selection`` section of the report (replay method)."""
    untyped = int(features.calls["task_type"].isna().sum())
    features = with_task_types(features)
    calls, frame, history = features.calls, features.frame, features.history
    candidates, rounds, eligible = fit.candidates, fit.rounds, fit.eligible
    featurizer, model = fit.featurizer, fit.model
    served_picks, all_rounds = _replay_served(frame, calls, candidates, rounds, eligible, seed)
    hist_names = list(history.columns)
    test_index = set(calls.index[eligible])
    model_pick: dict[int, tuple[float, str]] = {}
    ewma_pick: dict[int, tuple[float, str]] = {}
    for cand, cand_hist, owners in _candidate_frames(calls, frame, candidates, test_index):
        cand_hist.columns = hist_names
        pred = model.predict(featurizer.transform(cand, cand_hist))
        expected = pred.latency_p50_ms / np.maximum(pred.success, 0.05)
        ewma = cand_hist["hist_latency"].to_numpy(float)
        for (idx, server), score, avg in zip(owners, expected, ewma, strict=True):
            if idx not in model_pick or score < model_pick[idx][0]:
                model_pick[idx] = (score, server)
            key = -math.inf if math.isnan(avg) else avg  # unseen servers are tried first
            if idx not in ewma_pick or key < ewma_pick[idx][0]:
                ewma_pick[idx] = (key, server)
    rng = random.Random(seed)
    test_calls = calls[eligible]
    latency = test_calls["latency_ms"].fillna(TIMEOUT_MS)
    mean_by = test_calls.assign(latency_ms=latency).groupby(
        ["task_type", "server"])["latency_ms"].mean()
    best_fixed = {t: mean_by.loc[t].idxmin() for t in candidates if t in mean_by.index}
    rewards = {p: Rewards() for p in ("served", "model", "ewma", "random", "best_fixed")}
    for idx, task_type, server, lat, ok, cost in zip(
            test_calls.index, test_calls["task_type"], test_calls["server"], latency,
            test_calls["success"], test_calls["cost_usd"], strict=True):
        picks = {"served": served_picks[idx], "model": model_pick[idx][1],
                 "ewma": ewma_pick[idx][1], "random": rng.choice(candidates[task_type]),
                 "best_fixed": best_fixed.get(task_type)}
        for policy, pick in picks.items():
            if pick == server:
                rewards[policy].append(lat, ok, cost)
    section = {**_figures(rewards, with_cost=calls["cost_usd"].notna().any()),
               "weights": dict(DEFAULT_WEIGHTS), "variant": "online",
               "explore": SelectRequest.model_fields["explore"].default,
               "candidates": {t: len(s) for t, s in candidates.items()},
               "all_rounds": _figures(all_rounds, with_cost=calls["cost_usd"].notna().any())}
    if untyped:
        # Calls that named no task type were judged as asking for their tool.
        section["task_type_from_tool"] = untyped
    return section, None


def _figures(rewards: dict[str, Rewards], *, with_cost: bool) -> dict:
    """Decisions, mean latency, success rate (and mean cost) of each policy's matched picks."""
    figures = {
        "decisions": {p: len(r) for p, r in rewards.items()},
        "mean_latency_ms": {p: rounded(float(np.mean(np.asarray(v.latency))), 2) if v else None
                            for p, v in rewards.items()},
        "success_rate": {p: rounded(float(np.nanmean(np.asarray(v.success)))) if v else None
                         for p, v in rewards.items()},
    }
    if with_cost:
        figures["mean_cost_usd"] = {
            p: rounded(float(np.nanmean(costs)), 6) if v and not np.isnan(costs).all() else None
            for p, v in rewards.items() for costs in [np.asarray(v.cost)]}
    return figures


def _replay_served(frame: pd.DataFrame, calls: pd.DataFrame, candidates: dict[str, list[str]],
                   rounds: np.ndarray, kept: np.ndarray, seed: int
                   ) -> tuple[dict[int, str], dict[str, Rewards]]:
    """The served select decision's pick at every scorable round, and every round's rewards.

    Returns the served pick per call index of the calls ``kept`` marks (rounds
    of the test part), and the matched rewards of ``served``, ``ewma`` and
    ``random`` over all rounds (training part included).
    """
    engine = served_engine(("select",))
    selector = engine.plugin("select")
    # By the frame's positions, as the replay yields them (the calls are some of its rows).
    at = frame.index.get_indexer(calls.index)
    scored, keep = np.zeros(len(frame), bool), np.zeros(len(frame), bool)
    scored[at[rounds]] = True
    keep[at[kept]] = True
    scored_at, keep_at = scored.tolist(), keep.tolist()
    picks: dict[int, str] = {}
    rewards = {"served": Rewards(), "ewma": Rewards(), "random": Rewards()}
    ewma: dict[tuple[str, str], float] = {}
    finished: LabelDelay[tuple[str, str, float]] = LabelDelay()
    rng = random.Random(f"all-rounds-{seed}")
    index = frame.index.to_numpy()
    requests: dict[tuple[str, str], SelectRequest] = {}
    for position, call in replay(engine, frame_records(frame)):
        ts = call.epoch
        for key, lat in finished.ready(ts):
            old = ewma.get(key)
            ewma[key] = lat if old is None else old + 0.2 * (lat - old)
        latency = call.latency_ms
        if latency is not None:
            finished.add(finish_time(ts, latency), ((call.server, call.tool), latency))
        if not scored_at[position]:
            continue
        options = candidates[call.task_type]
        # The same question for every call of a task type and tool: validated once.
        request = requests.get((call.task_type, call.tool))
        if request is None:
            request = requests[(call.task_type, call.tool)] = SelectRequest(
                task_type=call.task_type, candidates=options, tool=call.tool)
        pick = selector.pick(request)  # select's first server, without its answer built
        if keep_at[position]:
            picks[int(index[position])] = pick
        cost = math.nan if call.cost_usd is None else call.cost_usd
        reward = (TIMEOUT_MS if latency is None else latency, float(bool(call.success)), cost)
        ewma_pick = min(options, key=lambda s: ewma.get((s, call.tool), -math.inf))
        for policy, chosen in (("served", pick), ("ewma", ewma_pick),
                               ("random", rng.choice(options))):
            if chosen == call.server:
                rewards[policy].append(*reward)
    return picks, rewards
