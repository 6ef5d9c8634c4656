"""``backbone evaluate``'s scoring of a release, from evidence built by hand so that every value is worked out on paper.

The cluster test (tests/cluster/test_pipeline.py) checks the same code against the search's own figures.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from backbone.evaluation import read_trec_run
from backbone.registry import AppSettings, ReleaseRecord, RerankerSlot, RetrieverSlot
from backbone.selection import Evaluation, Evidence, PairScores, RetrievalRun, Work, score_release, write_evaluation

METRICS = ["mrr@10", "ndcg@10"]


@pytest.fixture
def evidence() -> Evidence:
    # q1's relevant d2 is the retriever's second, q2's d5 its third; the reranker puts each first.
    run = {"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7}, "q2": {"d4": 0.9, "d6": 0.8, "d5": 0.7}}
    retrieval = RetrievalRun("ckpt-r", "index-r", "run-r", run, 2.0, corpus_encoded=False, retrieved=False)
    pairs = [("q1", "d1"), ("q1", "d2"), ("q1", "d3"), ("q2", "d4"), ("q2", "d5"), ("q2", "d6")]
    scores = PairScores("ckpt-s", dict(zip(pairs, [1.0, 3.0, 2.0, 1.0, 3.0, 2.0], strict=True)), 10.0, 0)
    return Evidence({"target": retrieval}, {"target": scores}, {"q1": {"d2": 1}, "q2": {"d5": 1}}, Work(0, 0, 0, 0))


@pytest.fixture
def release() -> ReleaseRecord:
    return ReleaseRecord(
        name="legal",
        version=3,
        created_at=datetime.now(UTC),
        retriever=RetrieverSlot(checkpoint="ckpt-r", index="index-r"),
        reranker=RerankerSlot(checkpoint="ckpt-s"),
        applications={
            "api": AppSettings(k=2, top_n=2, weight=1.0),
            "search": AppSettings(k=3, top_n=3, weight=0.75),
            "plain": AppSettings(k=3, top_n=3, weight=0.0),
        },
        change="create",
        previous_version=None,
    )


def test_a_release_is_scored_per_component_and_per_application_as_the_gateway_answers(
    evidence: Evidence, release: ReleaseRecord
) -> None:
    components, applications = score_release(evidence, release, METRICS)

    assert [scored.name for scored in components] == ["retriever", "reranker@2", "reranker@3"]
    retriever, top_2, top_3 = (scored.metrics for scored in components)
    # The retriever alone: d2 second (1/2, 1/log2(3)) and d5 third (1/3, 1/log2(4)).
    assert retriever["mrr@10"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert retriever["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 2)
    # The reranker over the top 2: q1's d2 comes first; q2's d5 was not among the candidates.
    assert top_2 == pytest.approx({"mrr@10": 0.5, "ndcg@10": 0.5})
    assert top_3 == pytest.approx({"mrr@10": 1.0, "ndcg@10": 1.0})

    by_name = {scored.name: scored for scored in applications}
    assert list(by_name) == ["api", "plain", "search"]
    assert by_name["api"].metrics == pytest.approx(top_2)
    # Weight 0.75 of min-max normalised scores: q1 d2 0.75 + 0.25 x 0.5 = 0.875 beats d3 (0.375) and d1 (0.25);
    # q2 d5 0.75 beats d6 (0.5) and d4 (0.25): both relevant documents first.
    assert list(by_name["search"].run["q2"]) == ["d5", "d6", "d4"]
    assert by_name["search"].metrics == pytest.approx({"mrr@10": 1.0, "ndcg@10": 1.0})
    # Weight 0 serves the retriever's order (the gateway does not call the reranker).
    assert by_name["plain"].metrics == pytest.approx(retriever)
    assert by_name["plain"].description == "top 3, no reranker"
    assert by_name["search"].per_query["mrr@10"] == pytest.approx({"q1": 1.0, "q2": 1.0})


def test_runs_and_per_query_metrics_are_written(evidence: Evidence, release: ReleaseRecord, tmp_path: Path) -> None:
    components, applications = score_release(evidence, release, METRICS)
    evaluation = Evaluation("legal v3", tmp_path, "test", 2, METRICS, components, applications, [], evidence.work)

    written = write_evaluation(evaluation, tmp_path / "out")

    assert sorted(path.name for path in written) == [
        "api.trec",
        "per_query.parquet",
        "plain.trec",
        "reranker@2.trec",
        "reranker@3.trec",
        "retriever.trec",
        "search.trec",
    ]
    assert list(read_trec_run(tmp_path / "out" / "search.trec")["q2"]) == ["d5", "d6", "d4"]
    table = pq.read_table(tmp_path / "out" / "per_query.parquet").to_pylist()
    assert len(table) == 6 * 2  # six rankings, two queries each
    row = next(row for row in table if (row["ranking"], row["query_id"]) == ("retriever", "q2"))
    assert row == {"ranking": "retriever", "query_id": "q2", "mrr@10": pytest.approx(1 / 3), "ndcg@10": 0.5}
