"""Choosing a training example's negatives from the current model's ranking, and which examples a stage keeps.

sentence-transformers' ``mine_hard_negatives`` encodes the whole corpus in one process and only knows the pair's
own positive. Here the ranking comes from encodings sharded across Ray Train workers (see ``ranking.py``), every
judged document of a query is excluded, a share of random negatives is mixed in, and the same ranking also decides
which queries a stage keeps (``failing``, ``ambiguous``); so these few rules are written out.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from backbone.recipes import Negatives, QuerySelection


@dataclass(frozen=True)
class QueryRanking:
    """What the current model thinks of one query.

    Args:
        top: the best candidates, ``(doc_id, score)`` by descending score.
        relevant_scores: the score of every judged relevant document of the query.
        best_relevant_rank: 1-based rank of the best relevant document (beyond ``top`` when it is not in it).
    """

    top: list[tuple[str, float]]
    relevant_scores: dict[str, float]
    best_relevant_rank: int


def keeps_query(ranking: QueryRanking, positive: str, selection: QuerySelection) -> bool:
    """Whether a stage with ``selection`` trains on the example (query, ``positive``).

    Args:
        ranking: the current model's ranking for the query.
        positive: the example's positive document.
        selection: the stage's query selection.

    Example:
        >>> ranking = QueryRanking([("d9", 0.9), ("d1", 0.8)], {"d1": 0.8}, best_relevant_rank=2)
        >>> keeps_query(ranking, "d1", QuerySelection(mode="failing", rank_threshold=1))
        True
    """
    if selection.mode == "all":
        return True
    if selection.mode == "failing":
        return ranking.best_relevant_rank > selection.rank_threshold
    if len(ranking.relevant_scores) >= selection.min_relevant:
        return True
    best_negative = max((score for doc, score in ranking.top if doc not in ranking.relevant_scores), default=None)
    return best_negative is not None and ranking.relevant_scores[positive] - best_negative < selection.margin


@dataclass(frozen=True)
class NegativeChoice:
    """The negatives of one example, and how they were found.

    Args:
        documents: the negatives, mined ones first, then random ones.
        mined: how many of them are hard candidates from the ranking.
        dropped: candidates of the rank window dropped as likely false negatives (the margin rule).
    """

    documents: list[str]
    mined: int
    dropped: int

    @property
    def random(self) -> int:
        """How many negatives were drawn at random from the corpus (the random share plus any shortfall)."""
        return len(self.documents) - self.mined


@dataclass(frozen=True)
class NegativeCounts:
    """A stage's totals over its examples and epochs: negatives mined, dropped as false negatives, random.

    Example:
        >>> counts = NegativeCounts.of([NegativeChoice(["a", "b"], mined=1, dropped=3)])
        >>> (counts + counts).metrics()
        {'negatives_mined': 2, 'negatives_dropped': 6, 'negatives_random': 2}
    """

    mined: int = 0
    dropped: int = 0
    random: int = 0

    @classmethod
    def of(cls, choices: Iterable[NegativeChoice]) -> NegativeCounts:
        """The totals of ``choices``."""
        choices = list(choices)
        return cls(
            mined=sum(choice.mined for choice in choices),
            dropped=sum(choice.dropped for choice in choices),
            random=sum(choice.random for choice in choices),
        )

    def __add__(self, other: NegativeCounts) -> NegativeCounts:
        return NegativeCounts(self.mined + other.mined, self.dropped + other.dropped, self.random + other.random)

    def metrics(self) -> dict[str, int]:
        """The totals under the names a stage reports them with."""
        return {"negatives_mined": self.mined, "negatives_dropped": self.dropped, "negatives_random": self.random}

    def describe(self) -> str:
        """The totals in words, for a stage's log line."""
        return f"{self.mined} mined, {self.dropped} dropped as likely false negatives, {self.random} filled at random"


def false_negative_ceiling(ranking: QueryRanking, positive: str, spec: Negatives) -> float:
    """The highest score a candidate may have and still be a negative (above it: a likely false negative).

    The reference is the positive's score, or with ``margin_reference: best`` the query's best score (the higher
    of the positive's and the top-ranked document's). ``relative_margin`` takes ``|reference| x relative_margin``
    off it, as sentence-transformers' ``mine_hard_negatives`` does; otherwise ``margin`` is taken off.

    Args:
        ranking: the current model's ranking for the example's query.
        positive: the example's positive document.
        spec: the stage's negatives policy.

    Example:
        >>> failing = QueryRanking([("d9", 0.9), ("d8", 0.8), ("d1", 0.6)], {"d1": 0.6}, best_relevant_rank=3)
        >>> round(false_negative_ceiling(failing, "d1", Negatives(policy="mined", count=1, margin=0.05)), 4)
        0.55
        >>> spec = Negatives(policy="mined", count=1, relative_margin=0.05, margin_reference="best")
        >>> round(false_negative_ceiling(failing, "d1", spec), 4)
        0.855
    """
    reference = ranking.relevant_scores[positive]
    if spec.margin_reference == "best" and ranking.top:
        reference = max(reference, ranking.top[0][1])
    if spec.relative_margin is not None:
        return reference - abs(reference) * spec.relative_margin
    return reference - spec.margin


def choose_negatives(
    ranking: QueryRanking, positive: str, spec: Negatives, corpus_ids: list[str], rng: random.Random
) -> NegativeChoice:
    """Pick ``spec.count`` negatives: the hardest safe candidates of ``spec.rank_range``, plus random documents.

    A candidate is unsafe when it is judged relevant, or a likely false negative: scored above
    :func:`false_negative_ceiling`. ``spec.random_fraction`` of the negatives are random corpus documents, and
    random ones also fill in when too few safe candidates are left.

    Args:
        ranking: the current model's ranking for the example's query.
        positive: the example's positive document.
        spec: the stage's negatives policy.
        corpus_ids: every document id, for random negatives.
        rng: the stage's seeded generator.

    Example:
        >>> ranking = QueryRanking([("d1", 0.9), ("d2", 0.87), ("d3", 0.5)], {"d1": 0.9}, 1)
        >>> choose_negatives(ranking, "d1", Negatives(policy="mined", count=1, rank_range=(1, 3),
        ...                  random_fraction=0.0), ["d1", "d2", "d3"], random.Random(0))
        NegativeChoice(documents=['d3'], mined=1, dropped=1)
    """
    random_count = round(spec.count * spec.random_fraction)
    ceiling = false_negative_ceiling(ranking, positive, spec)
    low, high = spec.rank_range
    window = [(doc, score) for doc, score in ranking.top[low - 1 : high] if doc not in ranking.relevant_scores]
    safe = [doc for doc, score in window if score <= ceiling]
    hard = safe[: spec.count - random_count]
    taken = set(hard) | set(ranking.relevant_scores)
    wanted = spec.count - len(hard)
    pool = [doc for doc in rng.sample(corpus_ids, min(len(corpus_ids), wanted + len(taken))) if doc not in taken]
    return NegativeChoice(hard + pool[:wanted], mined=len(hard), dropped=len(window) - len(safe))


def in_batch_negatives(positives: list[str], relevant: list[list[str]], count: int) -> list[list[str]]:
    """For a cross-encoder: pair each example with the positives of the next ``count`` examples of its batch.

    The batch is the global one, the same on every worker, so the pairs do not depend on how many workers share
    it. A positive judged relevant to the example's own query is skipped.

    Args:
        positives: the global batch's positive documents, in batch order.
        relevant: each example's relevant documents.
        count: negatives per example.

    Example:
        >>> in_batch_negatives(["a", "b", "c"], [["a"], ["b"], ["c", "a"]], 1)
        [['b'], ['c'], ['b']]
    """
    size = len(positives)
    chosen = []
    for index, own in enumerate(relevant):
        others = (positives[(index + step) % size] for step in range(1, size))
        chosen.append([doc for doc in dict.fromkeys(others) if doc not in own][:count])
    return chosen
