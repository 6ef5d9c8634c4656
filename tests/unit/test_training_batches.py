"""Conflict-free global batches: no query meets a document judged relevant to it from another example."""

from __future__ import annotations

import random

from backbone.training.batches import EpochBatches, conflict_free_batches, shuffled_batches


def _conflicts(batch: list[int], queries: list[str], documents: dict[int, list[str]], relevant: dict) -> list:
    return [
        (first, second)
        for first in batch
        for second in batch
        if first != second
        and (queries[first] == queries[second] or any(doc in relevant[queries[first]] for doc in documents[second]))
    ]


def test_a_query_with_more_examples_than_batches_leaves_the_rest_out() -> None:
    queries = ["q1", "q1", "q1", "q1", "q2", "q3"]
    documents = {index: [doc] for index, doc in enumerate("abcdef")}
    relevant = {"q1": ["a", "b", "c", "d"], "q2": ["e"], "q3": ["f"]}
    dealt = conflict_free_batches(range(6), queries, documents, relevant, batch_size=2, rng=random.Random(0))
    # Three batches would need three q1 examples, two of them together; two batches pair q2 and q3 with a q1 each.
    assert len(dealt.batches) == 2 and all(len(batch) == 2 for batch in dealt.batches)
    assert sorted(queries[index] for batch in dealt.batches for index in batch) == ["q1", "q1", "q2", "q3"]
    assert [queries[index] for index in dealt.left_out] == ["q1", "q1"]
    assert sorted([*dealt.left_out, *(index for batch in dealt.batches for index in batch)]) == list(range(6))


def test_a_mined_negative_judged_relevant_to_another_query_keeps_them_apart() -> None:
    queries = ["q1", "q2", "q3", "q4"]
    # Example 0's mined negative "b" is q2's positive: 0 and 1 may not share a batch; nor may 2 and 3 (both judge "c").
    documents = {0: ["a", "b"], 1: ["b"], 2: ["c"], 3: ["d", "x"]}
    relevant = {"q1": ["a"], "q2": ["b"], "q3": ["c"], "q4": ["d", "c"]}
    for seed in range(10):
        dealt = conflict_free_batches([0, 1, 2, 3], queries, documents, relevant, 2, random.Random(seed))
        assert sorted(sorted(batch) for batch in dealt.batches) == [[0, 2], [1, 3]] or sorted(
            sorted(batch) for batch in dealt.batches
        ) == [[0, 3], [1, 2]]
        assert dealt.left_out == []


def test_batches_are_full_conflict_free_deterministic_and_cover_the_examples() -> None:
    rng = random.Random(3)
    articles = [f"d{i}" for i in range(200)]  # few articles, so queries share relevant ones as on STARD
    relevant = {f"q{i}": sorted(rng.sample(articles, rng.randint(1, 5))) for i in range(60)}
    queries = [query for query, docs in relevant.items() for _ in docs]
    positives = [doc for docs in relevant.values() for doc in docs]
    documents = {index: [positives[index], rng.choice(articles)] for index in range(len(queries))}
    examples = list(range(len(queries)))

    dealt = conflict_free_batches(examples, queries, documents, relevant, 8, random.Random("seed:0"))
    assert all(len(batch) == 8 for batch in dealt.batches)
    assert all(not _conflicts(batch, queries, documents, relevant) for batch in dealt.batches)
    placed = [index for batch in dealt.batches for index in batch]
    assert sorted(placed + dealt.left_out) == examples and len(set(placed)) == len(placed)
    assert len(dealt.left_out) < 8  # no more than a plain shuffle's partial batch
    assert dealt == conflict_free_batches(examples, queries, documents, relevant, 8, random.Random("seed:0"))
    assert dealt != conflict_free_batches(examples, queries, documents, relevant, 8, random.Random("seed:1"))
    # A plain shuffle of the same examples puts queries with their own positives as negatives.
    shuffled = random.Random(0).sample(examples, len(examples))
    plain = [shuffled[start : start + 8] for start in range(0, len(shuffled) // 8 * 8, 8)]
    assert any(_conflicts(batch, queries, documents, relevant) for batch in plain)


def test_fewer_examples_than_a_batch_make_no_batch() -> None:
    dealt = conflict_free_batches([2, 0], ["q1", "q2", "q3"], {0: ["a"], 2: ["c"]}, {}, 4, random.Random(0))
    assert dealt == EpochBatches(batches=[], left_out=[0, 2])


def test_dense_conflicts_still_fill_batches() -> None:
    # As in a refinement stage on STARD: 112 failing examples with 8 documents each (positive + 7 hard negatives)
    # drawn from few articles: every round-robin deal into 3 batches of 32 leaves each a few examples short (no batch
    # at all), while filling one batch at a time finds two.
    rng = random.Random(5)
    articles = [f"d{i}" for i in range(1000)]
    relevant = {f"q{i}": sorted(rng.sample(articles, rng.randint(1, 3))) for i in range(80)}
    queries = [query for query, docs in relevant.items() for _ in docs][:112]
    positives = [doc for docs in relevant.values() for doc in docs][:112]
    documents = {index: [positives[index], *rng.sample(articles, 7)] for index in range(len(queries))}
    dealt = conflict_free_batches(range(len(queries)), queries, documents, relevant, 32, random.Random(0))
    assert len(dealt.batches) == 2 and all(len(batch) == 32 for batch in dealt.batches)
    assert all(not _conflicts(batch, queries, documents, relevant) for batch in dealt.batches)
    placed = [index for batch in dealt.batches for index in batch]
    assert sorted(placed + dealt.left_out) == list(range(len(queries)))


def test_shuffled_batches_keep_every_example_but_the_last_partial_batch() -> None:
    # A query-side loss masks judged documents itself: nothing conflicts, so only the remainder of 10 // 4 is left.
    dealt = shuffled_batches(range(10), 4, random.Random("seed:0"))
    assert [len(batch) for batch in dealt.batches] == [4, 4]
    assert sorted([*dealt.left_out, *(index for batch in dealt.batches for index in batch)]) == list(range(10))
    assert len(dealt.left_out) == 2
    assert dealt == shuffled_batches(range(10), 4, random.Random("seed:0"))
    assert dealt != shuffled_batches(range(10), 4, random.Random("seed:1"))
