"""A servable release built from scratch for tests and benchmarks: checkpoints, an index, documents, a release.

Everything is real (sentence-transformers checkpoints published with the spec a stage records, a FAISS index whose
lineage names its checkpoint, a prepared dataset whose checksum the index records); only the models are whatever
``model_dir`` holds (the tiny random encoder in tests, a real encoder for the benchmark).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from backbone.data import (
    CORPUS_SCHEMA,
    JUDGMENTS_SCHEMA,
    QUERIES_SCHEMA,
    RetrievalDataset,
    dataset_checksum,
    load_dataset,
    save_dataset,
)
from backbone.evaluation import DenseIndex
from backbone.models import CheckpointParams, build_reranker, build_retriever, encode_passages, passage_text
from backbone.recipes import Reranker, Retriever
from backbone.registry import AppSettings, Lineage, Registry, ReleaseRecord, Releases, publish_index

APPLICATIONS = {
    "default": AppSettings(k=8, top_n=3, rerank=True),
    "fast": AppSettings(k=5, top_n=5, rerank=False),
    "search": AppSettings(k=8, top_n=5, rerank=True, weight=0.5),  # the docs' curls name it
}
# Statute-like documents and questions in the tiny models' vocabulary.
TITLES = ["民法典第一条", "民法典第二条", "刑法第三条", "合同法第四条", "婚姻法第五条", "公司法第六条"]
TEXTS = [
    "自然人从事工商业经营，经依法登记，为个体工商户。",
    "当事人应当遵循诚信原则，不得违约。",
    "法人组织依照本条例设立变更登记。",
    "夫妻一方的财产债务偿还责任。",
    "子女父母继承财产的权利义务。",
    "公司应当赔偿侵权损失。",
]


@dataclass(frozen=True)
class ServableRelease:
    """What a test needs to deploy and roll back: the registry, the documents, the release and spare versions."""

    registry: Registry
    documents: Path
    record: ReleaseRecord
    other_retriever: tuple[str, str]  # (checkpoint, index) of a second retriever
    other_reranker: str


def make_documents(folder: Path, copies: int = 4) -> Path:
    """A prepared dataset of ``copies`` x 6 short statutes (ids ``d0``, ``d1``, ...)."""
    titles = [f"{title}-{copy}" for copy in range(copies) for title in TITLES]
    texts = [text for _ in range(copies) for text in TEXTS]
    ids = [f"d{position}" for position in range(len(titles))]
    dataset = RetrievalDataset(
        corpus=pa.table({"doc_id": ids, "title": titles, "text": texts}, schema=CORPUS_SCHEMA),
        queries=pa.table({"query_id": ["q1"], "text": ["谁可以成为个体工商户？"]}, schema=QUERIES_SCHEMA),
        judgments=pa.table(
            {"query_id": ["q1"], "doc_id": ["d0"], "grade": [1], "split": ["dev"]}, schema=JUDGMENTS_SCHEMA
        ),
        source={"loader": "tests"},
    )
    save_dataset(dataset, folder, name="serving-test")
    return folder


def _params(component: str, spec: Retriever | Reranker) -> dict:
    """The params a stage run records, for a checkpoint made here."""
    dumped = spec.model_dump(mode="json", exclude={"stages"})
    params = CheckpointParams(component=component, stage="test", base_model=spec.model, spec=dumped)
    return params.model_dump(mode="json", exclude_none=True)


def publish_retriever(registry: Registry, model_dir: Path, documents: Path, spec: Retriever) -> tuple[str, str]:
    """Publish a retriever checkpoint of ``model_dir`` and the index of ``documents`` it builds; return both ids."""
    corpus = load_dataset(documents).corpus.to_pydict()
    model = build_retriever(spec, str(model_dir))
    with tempfile.TemporaryDirectory() as folder:
        model.save(f"{folder}/model")
        checkpoint = registry.publish(
            "checkpoint",
            Path(folder) / "model",
            name="retriever/test",
            lineage=Lineage(),
            params=_params("retriever", spec),
        )
        passages = [passage_text(spec, t, x) for t, x in zip(corpus["title"], corpus["text"], strict=True)]
        DenseIndex.build(corpus["doc_id"], encode_passages(model, spec, passages)).save(Path(folder) / "index")
        index = publish_index(
            registry,
            Path(folder) / "index",
            checkpoint.id,
            name="retriever/test/index",
            documents=load_dataset(documents).corpus,
            dataset_checksum=dataset_checksum(documents),
        )
    return checkpoint.id, index.id


def publish_reranker(registry: Registry, model_dir: Path, spec: Reranker, seed: int = 0) -> str:
    """Publish a reranker checkpoint of ``model_dir`` (head drawn from ``seed``); return its id."""
    with tempfile.TemporaryDirectory() as folder:
        build_reranker(spec, str(model_dir), seed=seed).save(folder)
        return registry.publish(
            "checkpoint",
            Path(folder),
            name="reranker/test",
            lineage=Lineage(),
            params=_params("reranker", spec),
        ).id


def build_servable_release(
    root: Path,
    model_dir: Path,
    *,
    name: str = "legal-test",
    retriever: Retriever | None = None,
    reranker: Reranker | None = None,
    copies: int = 4,
    registry_uri: str | None = None,
) -> ServableRelease:
    """A registry (``registry_uri``, default under ``root``) with two retrievers, two rerankers, release ``name`` at v1.

    The documents are a prepared dataset under ``root``.
    """
    registry = Registry(registry_uri or str(root / "registry"))
    documents = make_documents(root / "datasets" / "serving-test", copies)
    retriever = retriever or Retriever(model=str(model_dir), max_query_length=32, max_passage_length=64)
    reranker = reranker or Reranker(model=str(model_dir), max_length=96, max_query_length=32)
    first_retriever = publish_retriever(registry, model_dir, documents, retriever)
    second_retriever = publish_retriever(registry, model_dir, documents, retriever)
    first_reranker = publish_reranker(registry, model_dir, reranker, seed=0)
    second_reranker = publish_reranker(registry, model_dir, reranker, seed=1)
    record = Releases(registry).create(
        name,
        retriever_checkpoint=first_retriever[0],
        retriever_index=first_retriever[1],
        reranker_checkpoint=first_reranker,
        applications=APPLICATIONS,
    )
    return ServableRelease(registry, documents, record, second_retriever, second_reranker)
