from __future__ import annotations

from predictor.context import ContextItem, ReduceRequest, reduce_context


def _items():
    return [
        ContextItem(id="retry", text="Retry the MCP tool call with exponential backoff after a "
                    "rate limit error from the search server", tokens=1500),
        ContextItem(id="retry-copy", text="Retry the MCP tool call with exponential backoff "
                    "after a rate limit error from the search server.", tokens=1500),
        ContextItem(id="limits", text="Search server rate limit: 60 calls per minute, retry "
                    "after the Retry-After header", tokens=1200),
        ContextItem(id="lunch", text="The cafeteria serves lunch from noon", tokens=300),
        ContextItem(id="backoff", text="Exponential backoff with jitter for rate limit errors "
                    "on the search server retry path", tokens=3000),
    ]


def test_keeps_the_most_relevant_context_and_drops_the_rest():
    answer = reduce_context(ReduceRequest(query="how to retry after a rate limit error on the "
                                          "search server", items=_items(), threshold=0.3))
    kept = [k.id for k in answer.kept]
    assert kept[0] == "retry"
    assert "lunch" not in kept
    reasons = {d.id: d.reason for d in answer.dropped}
    assert reasons["retry-copy"] == "near-duplicate of retry"
    assert "relevance below" in reasons["lunch"]
    assert answer.tokens_before == 7500
    assert answer.tokens_after <= 4000
    assert answer.tokens_after == sum(k.tokens for k in answer.kept)


def test_budget_is_never_exceeded():
    answer = reduce_context(ReduceRequest(query="rate limit retry", items=_items(),
                                          budget_tokens=1600, threshold=0.0))
    assert answer.tokens_after <= 1600
    assert any(d.reason == "over the token budget" for d in answer.dropped)


def test_empty_and_stop_word_inputs():
    assert reduce_context(ReduceRequest(query="x", items=[])).kept == []
    answer = reduce_context(ReduceRequest(query="the", items=[ContextItem(id="a", text="a")]))
    assert answer.kept == [] and answer.dropped[0].relevance == 0.0


def test_relevance_is_absolute_so_one_shared_word_is_not_enough():
    answer = reduce_context(ReduceRequest(query="retry after rate limit", items=[
        ContextItem(id="button", text="the retry button"),
        ContextItem(id="weather", text="Weather is fine today")]))
    assert answer.kept == []
    relevance = {d.id: d.relevance for d in answer.dropped}
    assert 0.2 < relevance["button"] < 0.3 and relevance["weather"] == 0.0
    assert answer.source == "rule"
