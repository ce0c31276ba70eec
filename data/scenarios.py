"""Scenarios built from real logs: the shifts users' logs will have and ours do not.

:func:`late_groups` moves some groups of a log (workflow families, say) to the
end of its time span, so that a time split tests on groups the training part
never saw: a new workflow system coming online, a tool mix that shifts.

:func:`prefix_blocks` turns each request of an LLM-serving log into the run of
prompt blocks a prefix (KV) cache reads: a system prompt shared by every
request of its template, the history of a conversation shared by its later
turns, and new blocks read once. The arrival times and prompt lengths are the
real log's; which requests share a prefix is drawn (seeded), since the log
does not say.

:func:`split_task_types` splits each task type into finer ones, per workflow
run: the many task types of a fleet where every team or agent names its own
tasks, each served by the same few servers, so that each (server, task type)
pair is seen seldom while the servers' state changes for all of them at once.

:func:`stretched` slows a log's clock down, so that each load window holds a
few calls where it held hundreds: the sparse, intermittent per-server load
of a quiet fleet, with the real log's bursts and lulls.

>>> records = [{"ts": float(t), "group": g} for t, g in enumerate("abab")]
>>> [(r["group"], r["ts"]) for r in late_groups(records, {"b"}, key=lambda r: r["group"],
...                                            span_s=100.0)]
[('a', 0.0), ('a', 80.0), ('b', 82.0), ('b', 100.0)]
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

__all__ = ["late_groups", "prefix_blocks", "split_task_types", "stretched"]


def _epoch(ts: Any) -> float:
    if isinstance(ts, int | float):
        return float(ts)
    return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()


def late_groups(records: Iterable[dict[str, Any]], late: set[str],
                key: Callable[[dict[str, Any]], str], *, span_s: float = 10_000_000.0,
                share: float = 0.19) -> list[dict[str, Any]]:
    """``records`` retimed: the other groups squeezed into the first ``1 - share`` of
    ``span_s`` (less a 1 % gap), the ``late`` groups into the last ``share``.

    Each part keeps its own order and relative spacing. Returns new dicts in time
    order, with ``ts`` in epoch seconds.
    """
    early = [dict(r) for r in records if key(r) not in late]
    later = [dict(r) for r in records if key(r) in late]
    gap = 0.01 * span_s

    def squeeze(part: list[dict[str, Any]], start: float, end: float) -> None:
        times = [_epoch(r["ts"]) for r in part]
        if not times:
            return
        low, high = min(times), max(times)
        for r, t in zip(part, times, strict=True):
            r["ts"] = start + (t - low) / ((high - low) or 1.0) * (end - start)

    squeeze(early, 0.0, (1 - share) * span_s - gap)
    squeeze(later, (1 - share) * span_s + gap, span_s)
    return sorted(early + later, key=lambda r: r["ts"])


def split_task_types(records: Iterable[dict[str, Any]], ways: int, *,
                     key: str = "workflow_id", seed: int = 0) -> list[dict[str, Any]]:
    """``records`` with each ``task_type`` split ``ways`` ways by the record's ``key``.

    Every record of one ``key`` value (a workflow run, by default) gets the same
    suffix ``/0`` to ``/ways-1``, drawn from the value and ``seed``; records
    without a task type or without ``key`` keep theirs. Returns new dicts, in
    the same order.

    >>> log = [{"task_type": "search", "workflow_id": w} for w in ("a", "b", "a")]
    >>> [r["task_type"] for r in split_task_types(log, 4)]
    ['search/0', 'search/1', 'search/0']
    """
    if ways < 1:
        raise ValueError(f"ways must be at least 1, got {ways}")
    suffixes: dict[Any, int] = {}
    out = []
    for record in records:
        record = dict(record)
        value = record.get(key)
        if record.get("task_type") and value is not None:
            if value not in suffixes:
                suffixes[value] = random.Random(f"{seed}/{value}").randrange(ways)
            record["task_type"] = f"{record['task_type']}/{suffixes[value]}"
        out.append(record)
    return out


def stretched(records: Iterable[dict[str, Any]], factor: float) -> list[dict[str, Any]]:
    """``records`` with the time since the first one multiplied by ``factor``.

    Returns new dicts in time order, with ``ts`` in epoch seconds; durations
    (``latency_ms``) stay as they were.

    >>> [r["ts"] for r in stretched([{"ts": 10.0}, {"ts": 12.5}], 100.0)]
    [10.0, 260.0]
    """
    if not factor > 0:
        raise ValueError(f"factor must be positive, got {factor}")
    out = [dict(r) for r in records]
    times = [_epoch(r["ts"]) for r in out]
    start = min(times, default=0.0)
    for r, t in zip(out, times, strict=True):
        r["ts"] = start + (t - start) * factor
    return sorted(out, key=lambda r: r["ts"])


def prefix_blocks(records: Iterable[dict[str, Any]], *, block_tokens: int = 256,
                  templates: int = 40, continue_share: float = 0.5, open_conversations: int = 200,
                  spacing_s: float = 0.0, seed: int = 0) -> list[dict[str, Any]]:
    """One record per prompt block each request reads, with the block as ``cache_key``.

    Each request (a record with ``input_tokens``) reads ``input_tokens //
    block_tokens`` blocks (at least one), in order, ``spacing_s`` apart from
    its own ``ts`` (by default all at once, as a prefix-cache lookup reads
    them: no block of a run is then known before the run arrives). Per
    ``task_type`` there are ``templates`` system prompts chosen by popularity
    (Zipf), each 1 to 8 blocks long. With probability
    ``continue_share`` a request continues one of the ``open_conversations``
    latest conversations of its task type: it reads that conversation's blocks
    so far (template and history) before its new ones. New blocks are read
    once unless a later turn continues the conversation. Other fields are
    kept; ``latency_ms`` and token counts are dropped from the blocks (they
    describe the request, not a block read).

    >>> log = [{"ts": float(t), "task_type": "chat", "input_tokens": 512} for t in range(3)]
    >>> [(r["ts"], r["cache_key"]) for r in prefix_blocks(log, templates=1, spacing_s=1e-4,
    ...                                                   continue_share=1.0)][:4]
    [(0.0, 'chat/t0/0'), (0.0001, 'chat/t0/1'), (1.0, 'chat/t0/0'), (1.0001, 'chat/t0/1')]
    """
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) for rank in range(templates)]
    template_blocks: dict[tuple[str, int], list[str]] = {}
    conversations: dict[str, deque[list[str]]] = {}
    out: list[dict[str, Any]] = []
    for number, record in enumerate(sorted(records, key=lambda r: _epoch(r["ts"]))):
        kind = str(record.get("task_type") or record.get("tool") or "default")
        wanted = max(1, int(record.get("input_tokens") or 0) // block_tokens)
        recent = conversations.setdefault(kind, deque(maxlen=open_conversations))
        if recent and rng.random() < continue_share:
            prefix = recent[rng.randrange(len(recent))]
        else:
            template = rng.choices(range(templates), weights)[0]
            if (kind, template) not in template_blocks:
                template_blocks[kind, template] = [f"{kind}/t{template}/{i}"
                                                   for i in range(rng.randint(1, 8))]
            prefix = list(template_blocks[kind, template])
            recent.append(prefix)
        shared = prefix[:wanted]
        new = [f"{kind}/r{number}/{i}" for i in range(wanted - len(shared))]
        # The conversation grows by this turn's new blocks: a later turn reads them too.
        prefix.extend(new)
        start = _epoch(record["ts"])
        for i, key in enumerate(shared + new):
            block = {k: v for k, v in record.items()
                     if k not in ("latency_ms", "input_tokens", "output_tokens")}
            block.update(ts=round(start + i * spacing_s, 6), cache_key=key)
            out.append(block)
    return out
