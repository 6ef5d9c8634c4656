"""The serving components loaded in-process from a registry release: search, embed, score, lineage refusals."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from _registry_helpers import write_files

from backbone.errors import BackboneError
from backbone.evaluation import interpolate, ranking
from backbone.models import CheckpointParams, build_retriever, checkpoint_spec
from backbone.recipes import Inference
from backbone.registry import DocumentEncoder, Lineage, Releases
from backbone.selection import assignment
from backbone.serving import gateway, search_steps
from backbone.serving.config import RerankerConfig, RetrieverConfig, ServingScaling
from backbone.serving.deploy import rollback
from backbone.serving.reranker import LoadedReranker
from backbone.serving.retriever import LoadedRetriever
from backbone.serving.search_steps import ranked_hits
from backbone.serving.serve_config import find_documents, serve_config
from serving_release import ServableRelease, build_servable_release, make_documents


@pytest.fixture(scope="module")
def release(tiny_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ServableRelease:
    return build_servable_release(tmp_path_factory.mktemp("release"), tiny_encoder_dir)


def _retriever_config(release: ServableRelease, **changes: str) -> RetrieverConfig:
    fields = {
        "registry": release.registry.uri,
        "checkpoint": release.record.retriever.checkpoint,
        "index": release.record.retriever.index,
        "documents": str(release.documents),
    }
    return RetrieverConfig(**{**fields, **changes})


def test_retriever_searches_its_index_with_titles_and_texts(release: ServableRelease) -> None:
    retriever = LoadedRetriever.load(_retriever_config(release))
    [hits] = retriever.search(["谁可以成为个体工商户？"], k=5)
    assert len(hits) == 5
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert all(hit.doc_id.startswith("d") and hit.title and hit.text for hit in hits)
    vectors = retriever.embed(["合同", "婚姻"], "passage")
    assert vectors.shape == (2, retriever.index.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert retriever.count_tokens(["合同" * 500], "query") == retriever.spec.max_query_length


def test_retriever_reads_the_documents_its_index_artifact_carries(release: ServableRelease, tmp_path: Path) -> None:
    from_dataset = LoadedRetriever.load(_retriever_config(release))
    config = RetrieverConfig(
        registry=release.registry.uri,
        checkpoint=release.record.retriever.checkpoint,
        index=release.record.retriever.index,
    )
    from_index = LoadedRetriever.load(config)  # no dataset folder named: the registry alone
    assert from_index.documents == from_dataset.documents and len(from_index.documents) == 24

    # An index published before indexes held their documents: refused with what to do.
    bare = release.registry.materialize(release.record.retriever.index)
    kept = write_files(
        tmp_path / "bare", {name: (bare / name).read_bytes() for name in ("index.faiss", "doc_ids.json")}
    )
    manifest = release.registry.get(release.record.retriever.index)
    old = release.registry.publish(
        "index", kept, name="retriever/old-index", lineage=manifest.lineage, params=manifest.params
    )
    with pytest.raises(BackboneError, match=f"index {old.id} carries no documents.parquet.*--documents DIR"):
        LoadedRetriever.load(config.model_copy(update={"index": old.id}))


def test_retriever_refuses_an_index_built_from_another_checkpoint(release: ServableRelease) -> None:
    other_index = release.other_retriever[1]
    with pytest.raises(BackboneError, match=f"index {other_index} was not built from retriever checkpoint"):
        LoadedRetriever.load(_retriever_config(release, index=other_index))


def test_retriever_refuses_documents_other_than_the_indexed_dataset(release: ServableRelease, tmp_path: Path) -> None:
    other = make_documents(tmp_path / "other", copies=5)
    with pytest.raises(BackboneError, match="are not the dataset the index was built on"):
        LoadedRetriever.load(_retriever_config(release, documents=str(other)))


def test_reranker_scores_pairs_and_refuses_a_retriever_checkpoint(release: ServableRelease) -> None:
    config = RerankerConfig(registry=release.registry.uri, checkpoint=release.record.reranker.checkpoint)
    reranker = LoadedReranker.load(config)
    scores = reranker.score(["谁可以成为个体工商户？"] * 2, ["个体工商户", "婚姻"])
    assert scores.shape == (2,) and scores[0] != scores[1]
    wrong = RerankerConfig(registry=release.registry.uri, checkpoint=release.record.retriever.checkpoint)
    with pytest.raises(BackboneError, match="is a retriever"):
        LoadedReranker.load(wrong)


def test_ranked_hits_follow_the_reranker_else_the_retriever(release: ServableRelease) -> None:
    [candidates] = LoadedRetriever.load(_retriever_config(release)).search(["合同"], k=4)
    reversed_scores = np.arange(4, dtype=np.float32)
    assert [hit.doc_id for hit in ranked_hits(candidates, reversed_scores, 2)] == [
        candidates[3].doc_id,
        candidates[2].doc_id,
    ]
    assert [hit.doc_id for hit in ranked_hits(candidates, None, 2)] == [c.doc_id for c in candidates[:2]]


def test_the_gateway_orders_by_the_applications_weight_with_the_searchs_function(release: ServableRelease) -> None:
    [candidates] = LoadedRetriever.load(_retriever_config(release)).search(["合同"], k=4)
    logits = np.array([-1.0, 3.0, 0.5, 2.0], dtype=np.float32)  # the reranker disagrees with the retriever

    dense = {c.doc_id: c.score for c in candidates}
    at_zero = ranked_hits(candidates, logits, 4, weight=0.0)
    # The tiny corpus repeats texts, so retriever scores tie: the order is the retriever's, ties by document id,
    # exactly as the search ranks a retriever run.
    assert len(set(dense.values())) < 4
    assert [hit.doc_id for hit in at_zero] == [doc for doc, _ in ranking(dense)]
    assert [hit.doc_id for hit in ranked_hits(candidates, logits, 4)] == [candidates[i].doc_id for i in (1, 3, 2, 0)]
    cross = dict(zip(dense, logits.astype(np.float64).tolist(), strict=True))
    for weight in (0.0, 0.3, 0.7, 1.0):
        hits = ranked_hits(candidates, logits, 3, weight=weight)
        expected = list(interpolate(dense, cross, weight).items())[:3]  # what the search scored for this weight
        assert [(hit.doc_id, hit.score) for hit in hits] == expected
        assert [hit.reranker_score for hit in hits] == [cross[doc] for doc, _ in expected]
    assert gateway.ranked_hits is ranked_hits and assignment.interpolate is search_steps.interpolate is interpolate


def test_serve_config_finds_the_indexed_dataset_and_binds_loopback(
    release: ServableRelease, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKBONE_DATASETS_DIR", str(release.documents.parent))
    documents = find_documents(release.registry, release.record.retriever.index)
    assert documents == release.documents
    config = serve_config(release.record, release.registry, documents)
    assert config["http_options"]["host"] == "127.0.0.1"
    deployments = {d["name"]: d["user_config"] for d in config["applications"][0]["deployments"]}
    assert deployments["Retriever"]["index"] == release.record.retriever.index
    assert deployments["Reranker"]["checkpoint"] == release.record.reranker.checkpoint
    assert deployments["Gateway"]["applications"]["default"] == {
        "k": 8,
        "top_n": 3,
        "rerank": True,
        "weight": 1.0,
        "rerank_timeout_s": None,  # the test release sets none: the gateway's deadline applies
        "without_reranker": "retriever",
    }


def _query_side_checkpoint(release: ServableRelease, model_dir: Path, tmp_path: Path) -> str:
    """A query-side stage's checkpoint whose frozen document tower is the served retriever's (the same base)."""
    served = release.registry.get(release.record.retriever.checkpoint)
    spec = checkpoint_spec(served).model_copy(update={"document_encoder": "frozen"})
    model = build_retriever(spec, str(model_dir))
    with torch.no_grad():
        model[0].sub_modules["query"][0].auto_model.get_input_embeddings().weight.mul_(1.5)  # a "trained" query tower
    model.save(str(tmp_path / "model"))
    params = {
        **CheckpointParams.of(served).model_dump(mode="json", exclude_none=True),
        "spec": spec.model_dump(mode="json", exclude={"stages"}),
        "document_encoder": DocumentEncoder(mode="frozen", checkpoint=served.id).model_dump(mode="json"),
    }
    return release.registry.publish(
        "checkpoint",
        tmp_path / "model",
        name="retriever/query-side",
        lineage=Lineage(parents=[served.id]),
        params=params,
    ).id


def test_an_index_compatible_retriever_swaps_its_query_encoder_and_keeps_the_index(
    release: ServableRelease, tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    current = LoadedRetriever.load(_retriever_config(release))
    query_side = _query_side_checkpoint(release, tiny_encoder_dir, tmp_path)
    swapped = LoadedRetriever.load(_retriever_config(release, checkpoint=query_side), current)
    assert swapped.index is current.index and swapped.documents is current.documents
    assert (swapped.checkpoint, swapped.index_id) == (query_side, current.index_id)
    query = ["谁可以成为个体工商户？"]
    assert not np.allclose(swapped.embed(query, "query"), current.embed(query, "query"))
    np.testing.assert_allclose(swapped.embed(["合同"], "passage"), current.embed(["合同"], "passage"), atol=1e-6)
    [hits] = swapped.search(query, k=3)
    assert len(hits) == 3
    other_index = release.other_retriever[1]
    with pytest.raises(
        BackboneError, match=f"index {other_index} was not built from retriever checkpoint {query_side} or"
    ):
        LoadedRetriever.load(_retriever_config(release, checkpoint=query_side, index=other_index))


class _RefusingCluster:
    """A stand-in for ``ServeCluster`` that serves ``config`` and refuses to apply one serving ``refused``.

    Only the release history and the configs applied are under test here; applying to a real cluster is
    tested in tests/serve/test_rollback.py.
    """

    def __init__(self, config: dict, refused: str) -> None:
        self.config, self.refused, self.applied = config, refused, []

    def deployed(self) -> dict:
        return copy.deepcopy(self.config)

    def apply(self, config: dict) -> None:
        served = {d["name"]: d["user_config"] for d in config["applications"][0]["deployments"]}
        if served["Reranker"]["checkpoint"] == self.refused:
            raise BackboneError("deploy failed: the Reranker replica did not start")
        self.config = config
        self.applied.append(served)


def test_a_rollback_that_fails_to_apply_is_undone_in_the_history_and_on_the_cluster(
    tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    built = build_servable_release(tmp_path, tiny_encoder_dir)
    releases = Releases(built.registry)
    promoted = releases.promote(built.record.name, "reranker", built.other_reranker)
    config = serve_config(promoted, built.registry, built.documents)
    cluster = _RefusingCluster(config, refused=built.record.reranker.checkpoint)

    with pytest.raises(BackboneError, match=r"failed to apply: deploy failed.*serves again, recorded as v4"):
        rollback("reranker", cluster)  # type: ignore[arg-type]

    history = releases.history(built.record.name)
    assert [r.reranker.checkpoint for r in history] == [
        built.record.reranker.checkpoint,
        built.other_reranker,
        built.record.reranker.checkpoint,  # v3: the rollback, which the cluster refused
        built.other_reranker,  # v4: what serves again, and why
    ]
    assert history[-1].note.startswith("v3 failed to apply: deploy failed")
    assert cluster.applied[-1]["Gateway"]["release_version"] == 4
    assert cluster.applied[-1]["Reranker"]["checkpoint"] == built.other_reranker


def test_the_scaling_files_inference_threads_and_batching_reach_each_components_config(
    release: ServableRelease,
) -> None:
    scaling = ServingScaling.model_validate(
        {
            "retriever": {"threads": 2, "inference": {"precision": "bf16"}, "batching": {"batch_wait_timeout_s": 0}},
            "reranker": {"inference": {"precision": "auto"}, "batching": {"max_batch_size": 4}},
        }
    )
    config = serve_config(release.record, release.registry, release.documents, scaling=scaling)
    deployments = {d["name"]: d["user_config"] for d in config["applications"][0]["deployments"]}
    assert deployments["Retriever"]["threads"] == 2 and deployments["Reranker"]["threads"] is None
    assert deployments["Retriever"]["inference"] == {"precision": "bf16", "max_batch_tokens": 4096}
    assert deployments["Reranker"]["inference"] == {"precision": "auto", "max_batch_tokens": 4096}
    assert deployments["Retriever"]["batching"] == {"max_batch_size": 16, "batch_wait_timeout_s": 0.0}
    assert deployments["Reranker"]["batching"] == {"max_batch_size": 4, "batch_wait_timeout_s": 0.005}
    # Unset, each component runs as its checkpoint's recipe said (what the search measured).
    plain = serve_config(release.record, release.registry, release.documents)
    assert all(d["user_config"].get("inference") is None for d in plain["applications"][0]["deployments"])


def test_a_deployments_inference_overrides_the_checkpoints_own(release: ServableRelease) -> None:
    record, registry = release.record, release.registry
    config = RerankerConfig(registry=registry.uri, checkpoint=record.reranker.checkpoint)
    own = LoadedReranker.load(config)
    assert own.spec.inference == Inference() and own.info()["precision"] == "fp32"
    overridden = LoadedReranker.load(config.model_copy(update={"inference": Inference(precision="bf16")}))
    assert overridden.info()["precision"] == "bf16"
    scores = own.score(["谁可以成为个体工商户？"] * 2, ["自然人从事工商业经营", "当事人应当遵循诚信原则"])
    low = overridden.score(["谁可以成为个体工商户？"] * 2, ["自然人从事工商业经营", "当事人应当遵循诚信原则"])
    assert not np.array_equal(scores, low)
    np.testing.assert_allclose(low, scores, atol=0.05 * max(1.0, float(np.abs(scores).max())))
