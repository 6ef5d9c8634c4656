"""An epoch's global batches, built so that no query meets a document judged relevant to it as a negative.

The retriever's InfoNCE treats every passage of the global batch as a negative of every query but its own, and the
reranker's ``in_batch`` policy pairs a query with the batch's other positives. A plain shuffle puts two examples of
one query (a query with several relevant articles) in one batch, and each then learns that the other's positive is
irrelevant. sentence-transformers' ``NoDuplicatesBatchSampler`` keeps equal texts out of a batch; the rule here is
the stricter one of judged relevance, over every document an example brings into the batch (its positive and its
mined negatives).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class EpochBatches:
    """An epoch's batches of example indices, each of the full size, and the examples no batch could take.

    Args:
        batches: the global batches, in training order.
        left_out: the examples trained in no batch this epoch, sorted.
    """

    batches: list[list[int]]
    left_out: list[int]


def conflict_free_batches(
    examples: Sequence[int],
    queries: Sequence[str],
    documents: Mapping[int, Sequence[str]],
    relevant: Mapping[str, Sequence[str]],
    batch_size: int,
    rng: random.Random,
) -> EpochBatches:
    """Deal ``examples`` into batches of ``batch_size`` where no example conflicts with another.

    Two examples conflict when they share a query, or when a document one brings into the batch is judged
    relevant to the other's query. Examples are shuffled with ``rng``, then dealt round-robin into as many batches
    as they can fill, those of the queries with the most examples first (they are the ones that must be spread);
    each goes into the next batch with room that it does not conflict with. The batches that end full are kept;
    the examples of the others and those no batch took are dealt again, into fewer batches, until no full batch
    comes out; then batches are filled one at a time, each taking the first examples of the shuffle that fit it
    (as sentence-transformers' ``NoDuplicatesBatchSampler`` does), until one cannot be filled. What is left
    (fewer than a batch, or examples that conflict with every batch, such as a query with more examples than there
    are batches) is trained in no batch this epoch; the next epoch's shuffle leaves out
    others. Every worker computes the same batches from the same generator state (sets only answer membership,
    they never decide an order).

    Args:
        examples: the example indices to batch (the stage's selected examples).
        queries: the query id of every example, by index.
        documents: the documents each example brings into a batch: its positive, then its mined negatives.
        relevant: each query's judged relevant documents.
        batch_size: the global batch size.
        rng: the epoch's seeded generator.

    Example:
        >>> batches = conflict_free_batches(
        ...     [0, 1, 2, 3], ["q1", "q1", "q2", "q3"], {0: ["a"], 1: ["b"], 2: ["c"], 3: ["d"]},
        ...     {"q1": ["a", "b"], "q2": ["c"], "q3": ["d"]}, batch_size=2, rng=random.Random(0),
        ... )
        >>> sorted(sorted(batch) for batch in batches.batches), batches.left_out
        ([[0, 2], [1, 3]], [])
    """
    pool = list(examples)
    rng.shuffle(pool)
    batches: list[list[int]] = []
    while len(pool) >= batch_size:
        full, pool = _deal(pool, queries, documents, relevant, batch_size)
        if not full:
            break
        batches.extend(full)
    # Dense conflicts (hard negatives judged relevant to similar queries) can leave every round-robin batch a few
    # examples short; batches filled one at a time from what is left then still take most of the examples.
    while len(pool) >= batch_size:
        batch, rest = _fill(pool, queries, documents, relevant, batch_size)
        if batch is None:
            break
        batches.append(batch)
        pool = rest
    rng.shuffle(batches)
    return EpochBatches(batches, sorted(pool))


def shuffled_batches(examples: Sequence[int], batch_size: int, rng: random.Random) -> EpochBatches:
    """A seeded shuffle cut into full batches, for a loss that masks every judged document itself.

    A query-side retriever stage leaves each query's judged documents out of its softmax, so no two examples can
    conflict (two examples of one query included): only the last partial batch is left out.

    Args:
        examples: the example indices to batch.
        batch_size: the global batch size.
        rng: the epoch's seeded generator.

    Example:
        >>> dealt = shuffled_batches([0, 1, 2, 3, 4], 2, random.Random(0))
        >>> [len(batch) for batch in dealt.batches], len(dealt.left_out)
        ([2, 2], 1)
    """
    pool = list(examples)
    rng.shuffle(pool)
    full = len(pool) // batch_size * batch_size
    return EpochBatches([pool[start : start + batch_size] for start in range(0, full, batch_size)], sorted(pool[full:]))


@dataclass
class _Batch:
    members: list[int] = field(default_factory=list)
    queries: set[str] = field(default_factory=set)
    documents: set[str] = field(default_factory=set)
    relevant: set[str] = field(default_factory=set)


def _fits(batch: _Batch, query: str, brought: Sequence[str], judged: Sequence[str]) -> bool:
    return (
        query not in batch.queries
        and not any(doc in batch.relevant for doc in brought)
        and not any(doc in batch.documents for doc in judged)
    )


def _add(batch: _Batch, index: int, query: str, brought: Sequence[str], judged: Sequence[str]) -> None:
    batch.members.append(index)
    batch.queries.add(query)
    batch.documents.update(brought)
    batch.relevant.update(judged)


def _fill(
    pool: list[int],
    queries: Sequence[str],
    documents: Mapping[int, Sequence[str]],
    relevant: Mapping[str, Sequence[str]],
    batch_size: int,
) -> tuple[list[int] | None, list[int]]:
    """One batch of the first examples of ``pool`` that fit together, and the rest; ``None`` if none fills."""
    batch, rest = _Batch(), []
    for index in pool:
        query = queries[index]
        if len(batch.members) < batch_size and _fits(batch, query, documents[index], relevant[query]):
            _add(batch, index, query, documents[index], relevant[query])
        else:
            rest.append(index)
    return (batch.members, rest) if len(batch.members) == batch_size else (None, pool)


def _deal(
    pool: list[int],
    queries: Sequence[str],
    documents: Mapping[int, Sequence[str]],
    relevant: Mapping[str, Sequence[str]],
    batch_size: int,
) -> tuple[list[list[int]], list[int]]:
    """One round: deal ``pool`` into ``len(pool) // batch_size`` batches; return the full ones and the rest."""
    open_batches = [_Batch() for _ in range(len(pool) // batch_size)]
    per_query = Counter(queries[index] for index in pool)
    unplaced: list[int] = []
    cursor = 0
    for index in sorted(pool, key=lambda index: -per_query[queries[index]]):  # stable: ties keep the shuffle
        query = queries[index]
        brought, judged = documents[index], relevant[query]
        for step in range(len(open_batches)):
            batch = open_batches[(cursor + step) % len(open_batches)]
            if len(batch.members) < batch_size and _fits(batch, query, brought, judged):
                _add(batch, index, query, brought, judged)
                cursor = (cursor + step + 1) % len(open_batches)
                break
        else:
            unplaced.append(index)
    full = [batch.members for batch in open_batches if len(batch.members) == batch_size]
    rest = [index for batch in open_batches if len(batch.members) < batch_size for index in batch.members]
    return full, rest + unplaced
