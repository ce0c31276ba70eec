"""The reduce_context decision: which context items to keep under a token budget.

Relevance is absolute, from 0 to 1: the share of the query's words (English
stop words aside) that an item contains, each word weighted by its inverse
document frequency over the items, so rare words count more. An item with
every query word scores 1, whatever the other items; one sharing a single
common word of a five-word query scores about 0.2. Items below
``threshold`` (the seed's 0.7) are dropped, near-duplicates (TF-IDF cosine
of word unigrams and bigrams >= ``duplicate_threshold`` with a more
relevant kept item) are dropped, and the rest are kept in order of
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
from scipy import sparse
from sklearn.feature_extraction.text import (
    ENGLISH_STOP_WORDS,
    CountVectorizer,
    TfidfTransformer,
)

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


def _coverage(counts: sparse.csr_matrix, terms: np.ndarray) -> np.ndarray:
    """IDF-weighted share of the query's words (row 0) each item (other rows) contains.

    Words are the unigrams among ``terms`` that are not English stop words.
    """
    asked = [j for j in counts[0].nonzero()[1]
             if " " not in terms[j] and terms[j] not in ENGLISH_STOP_WORDS]
    items = counts[1:]
    if not asked or items.shape[0] == 0:
        return np.zeros(items.shape[0])
    present = (items[:, asked] > 0).astype(float)
    df = np.asarray(present.sum(axis=0)).ravel()
    idf = np.log((1 + items.shape[0]) / (1 + df)) + 1.0  # scikit-learn's smoothed idf
    return np.asarray(present @ idf).ravel() / idf.sum()


def reduce_context(req: ReduceRequest) -> ReduceResponse:
    """Keep the most relevant, non-duplicate items that fit the budget."""
    items = req.items
    before = sum(_tokens(i) for i in items)
    if not items:
        return ReduceResponse(kept=[], dropped=[], tokens_before=0, tokens_after=0)
    words = CountVectorizer(ngram_range=(1, 2))
    try:
        counts = words.fit_transform([req.query, *(i.text for i in items)]).tocsr()
    except ValueError:  # empty texts: nothing is relevant, nothing duplicates anything
        relevance, pairwise = np.zeros(len(items)), np.eye(len(items))
    else:
        relevance = _coverage(counts, words.get_feature_names_out())
        matrix = TfidfTransformer(sublinear_tf=True).fit_transform(counts[1:])
        pairwise = (matrix @ matrix.T).toarray()
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
    """The reduce_context decision as a plug-in: fixed rules per request, nothing learned."""

    family = "context"
    stateful = False

    def reduce(self, req: ReduceRequest) -> ReduceResponse:
        return reduce_context(req)
