"""The reduce_context decision: which context items to keep under a token budget.

Relevance is the TF-IDF cosine similarity between the query and each item
(word unigrams and bigrams, fitted on the items and the query), scaled so
that the most relevant item scores 1; items below ``threshold`` (default
0.7) are dropped, near-duplicates (cosine >= ``duplicate_threshold`` with a
more relevant kept item) are dropped, and the rest are kept in order of
relevance while they fit the budget (default 4,000 tokens). Token counts
are the item's own when given, else estimated at four characters a token.

>>> answer = reduce_context(ReduceRequest(query="retry after rate limit", items=[
...     ContextItem(id="a", text="How to retry after a rate limit error"),
...     ContextItem(id="b", text="Company holiday schedule"),
... ]))
>>> [k.id for k in answer.kept], [d.id for d in answer.dropped]
(['a'], ['b'])
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from predictor.api.context import ContextItem, DroppedItem, KeptItem, ReduceRequest, ReduceResponse
from predictor.plugin import DecisionPlugin

__all__ = [
    "ContextItem",
    "ContextReducer",
    "DroppedItem",
    "KeptItem",
    "ReduceRequest",
    "ReduceResponse",
    "reduce_context",
]












def _tokens(item: ContextItem) -> int:
    return item.tokens if item.tokens is not None else math.ceil(len(item.text) / 4)


def reduce_context(req: ReduceRequest) -> ReduceResponse:
    """Keep the most relevant, non-duplicate items that fit the budget."""
    items = req.items
    before = sum(_tokens(i) for i in items)
    if not items:
        return ReduceResponse(kept=[], dropped=[], tokens_before=0, tokens_after=0)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    try:
        matrix = vectorizer.fit_transform([req.query, *(i.text for i in items)])
        sims = (matrix[1:] @ matrix[0].T).toarray().ravel()
        pairwise = (matrix[1:] @ matrix[1:].T).toarray()
    except ValueError:  # nothing but stop words or empty texts: nothing is relevant
        sims, pairwise = np.zeros(len(items)), np.eye(len(items))
    top = sims.max()
    relevance = sims / top if top > 0 else sims
    kept: list[KeptItem] = []
    kept_index: list[int] = []
    dropped: list[DroppedItem] = []
    used = 0
    for i in np.argsort(-relevance, kind="stable"):
        item, rel = items[i], round(float(relevance[i]), 4)
        duplicate = next((j for j in kept_index if pairwise[i, j] >= req.duplicate_threshold),
                         None)
        if rel < req.threshold:
            dropped.append(DroppedItem(id=item.id, relevance=rel,
                                       reason=f"relevance below {req.threshold}"))
        elif duplicate is not None:
            dropped.append(DroppedItem(id=item.id, relevance=rel,
                                       reason=f"near-duplicate of {items[duplicate].id}"))
        elif used + _tokens(item) > req.budget_tokens:
            dropped.append(DroppedItem(id=item.id, relevance=rel, reason="over the token budget"))
        else:
            used += _tokens(item)
            kept.append(KeptItem(id=item.id, relevance=rel, tokens=_tokens(item)))
            kept_index.append(int(i))
    return ReduceResponse(kept=kept, dropped=dropped, tokens_before=before, tokens_after=used)


class ContextReducer(DecisionPlugin):
    """The reduce_context decision as a plug-in: TF-IDF per request, nothing learned."""

    family = "context"
    stateful = False

    def reduce(self, req: ReduceRequest) -> ReduceResponse:
        return reduce_context(req)
