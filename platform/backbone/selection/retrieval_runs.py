"""Each retriever checkpoint's ranking of the evaluation queries: its index built once, its run retrieved once.

Both are registry artifacts. The index (kind ``index``) is the one :func:`~backbone.registry.find_index` finds for the
checkpoint: the one its stage published when it was evaluated or, for a query-side stage (``document_encoder:
frozen``), the one its document encoder (the base checkpoint) published, shared by every such stage. Only a
checkpoint whose document encoder has none yet has its corpus encoded here. The run (kind ``run``) holds the top
``depth`` documents of every evaluation query, as Parquet and as a TREC run file, with the measured time per query.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

from backbone.data import load_dataset
from backbone.evaluation import DenseIndex, Run, read_parquet_run, write_parquet_run, write_trec_run
from backbone.models import encode_passages, encode_queries, load_retriever
from backbone.recipes import Retriever
from backbone.registry import ArtifactManifest, Lineage, Registry, document_encoder, find_index, publish_index
from backbone.selection.inputs import SearchInputs

RUN_FILE = "run.parquet"
TREC_FILE = "run.trec"


@dataclass(frozen=True)
class RetrievalRun:
    """A retriever checkpoint's top documents for every evaluation query.

    Args:
        checkpoint: the retriever checkpoint's id.
        index: the id of the index artifact built from it.
        artifact: the id of the run artifact.
        run: query id -> document id -> inner product, ``depth`` documents per query.
        query_ms: measured time per query to embed it and search the index (queries embedded in batches).
        corpus_encoded: whether this call encoded the corpus (no index was published for its document encoder yet).
        retrieved: whether this call ran the model at all (false: everything came from the registry).
    """

    checkpoint: str
    index: str
    artifact: str
    run: Run
    query_ms: float
    corpus_encoded: bool
    retrieved: bool


def retrieval_run(
    registry_uri: str, checkpoint: str, spec: Retriever, inputs: SearchInputs, depth: int
) -> RetrievalRun:
    """The run of ``checkpoint`` on the evaluation split: from the registry, else retrieved and published.

    Args:
        registry_uri: the registry holding the checkpoint (opened here: this runs as a Ray task).
        checkpoint: the retriever checkpoint's id.
        spec: the retriever's spec (prompts and lengths).
        inputs: the evaluation queries and the corpus.
        depth: documents kept per query: the largest retrieval budget searched.

    Example:
        >>> retrieval_run(registry.uri, checkpoint_id, recipe.retriever, inputs, depth=100)  # doctest: +SKIP
    """
    registry = Registry(registry_uri)
    key = f"retrieval:{checkpoint}:{inputs.data}:{inputs.split}:{depth}"
    if (found := registry.find("run", key)) is not None:
        run = read_parquet_run(registry.materialize(found.id) / RUN_FILE)
        index_id = found.params["index"]
        return RetrievalRun(checkpoint, index_id, found.id, run, found.metrics["query_ms"], False, False)

    torch.set_num_threads(1)  # one Ray CPU per task
    model = load_retriever(str(registry.materialize(checkpoint)), spec)
    index, index_manifest, corpus_encoded = _index(registry, registry.get(checkpoint), model, spec, inputs)
    query_ids = list(inputs.queries)
    encode_queries(model, spec, [inputs.queries[query_ids[0]]])  # warm-up: the first call pays one-off set-up
    started = time.perf_counter()
    embeddings = encode_queries(model, spec, [inputs.queries[query] for query in query_ids])
    run = index.search(query_ids, embeddings, k=depth)
    query_ms = 1000 * (time.perf_counter() - started) / max(len(query_ids), 1)
    with tempfile.TemporaryDirectory() as folder:
        write_parquet_run(run, Path(folder) / RUN_FILE)
        write_trec_run(run, Path(folder) / TREC_FILE, tag=checkpoint)
        artifact = registry.publish(
            "run",
            folder,
            name=f"retrieval/{inputs.split}",
            lineage=Lineage(parents=[checkpoint, index_manifest.id], dataset_checksum=inputs.data),
            metrics={"query_ms": query_ms},
            params={"role": "retrieval", "checkpoint": checkpoint, "index": index_manifest.id, "depth": depth},
            cache_key=key,
        )
    return RetrievalRun(checkpoint, index_manifest.id, artifact.id, run, query_ms, corpus_encoded, True)


def _index(
    registry: Registry, checkpoint: ArtifactManifest, model: SentenceTransformer, spec: Retriever, inputs: SearchInputs
) -> tuple[DenseIndex, ArtifactManifest, bool]:
    """The index serving the checkpoint, or a new one from encoding the corpus (then the flag is true).

    A new one is published as its document encoder's: the checkpoint's document tower is that encoder's.
    """
    if (found := find_index(registry, checkpoint, inputs.data)) is not None:
        return DenseIndex.load(registry.materialize(found.id)), found, False
    passages = encode_passages(model, spec, inputs.retriever_passages, progress=f"encode corpus ({checkpoint.name})")
    index = DenseIndex.build(inputs.corpus_ids, passages)
    with tempfile.TemporaryDirectory() as folder:
        index.save(Path(folder))
        manifest = publish_index(
            registry,
            folder,
            document_encoder(checkpoint),
            name="retriever/index",
            documents=load_dataset(inputs.dataset_dir).corpus,
            dataset_checksum=inputs.data,
        )
    return index, manifest, True
