"""DenseIndex: exact inner-product search (checked against numpy), save/load round trip, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backbone.errors import BackboneError, DataError
from backbone.evaluation import DenseIndex

DOCS, QUERIES, DIM = 300, 7, 16


def unit_rows(rows: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def corpus() -> tuple[list[str], np.ndarray]:
    return [f"doc-{index}" for index in range(DOCS)], unit_rows(DOCS, seed=1)


def test_search_is_exact(corpus: tuple[list[str], np.ndarray]) -> None:
    doc_ids, embeddings = corpus
    queries = unit_rows(QUERIES, seed=2)
    query_ids = [f"q{index}" for index in range(QUERIES)]
    run = DenseIndex.build(doc_ids, embeddings).search(query_ids, queries, k=10)
    scores = queries @ embeddings.T
    assert list(run) == query_ids
    for row, query_id in enumerate(query_ids):
        expected = np.argsort(-scores[row])[:10]
        assert list(run[query_id]) == [doc_ids[index] for index in expected]
        assert list(run[query_id].values()) == pytest.approx(scores[row, expected].tolist(), abs=1e-5)


def test_save_and_load_round_trip(corpus: tuple[list[str], np.ndarray], tmp_path: Path) -> None:
    doc_ids, embeddings = corpus
    index = DenseIndex.build(doc_ids, embeddings)
    index.save(tmp_path / "index")
    assert sorted(path.name for path in (tmp_path / "index").iterdir()) == ["doc_ids.json", "index.faiss"]
    assert json.loads((tmp_path / "index" / "doc_ids.json").read_text(encoding="utf-8")) == doc_ids
    loaded = DenseIndex.load(tmp_path / "index")
    assert (len(loaded), loaded.dim, loaded.doc_ids) == (DOCS, DIM, doc_ids)
    queries = unit_rows(QUERIES, seed=3)
    query_ids = [str(index) for index in range(QUERIES)]
    assert loaded.search(query_ids, queries, k=5) == index.search(query_ids, queries, k=5)


def test_k_beyond_the_corpus_is_clipped() -> None:
    index = DenseIndex.build(["a", "b"], np.eye(2, dtype=np.float32))
    assert index.search(["q"], np.array([[0.6, 0.8]]), k=10) == {
        "q": {"b": pytest.approx(0.8), "a": pytest.approx(0.6)}
    }


def test_dimension_mismatch_is_an_error(corpus: tuple[list[str], np.ndarray]) -> None:
    index = DenseIndex.build(*corpus)
    with pytest.raises(BackboneError, match=f"dimension 8, the index has {DIM}"):
        index.search(["q"], np.ones((1, 8), dtype=np.float32), k=3)
    with pytest.raises(BackboneError, match="2 query ids but 1 query embeddings"):
        index.search(["q1", "q2"], unit_rows(1, seed=4), k=3)
    with pytest.raises(BackboneError, match="2-D array"):
        index.search(["q"], np.ones(DIM, dtype=np.float32), k=3)
    with pytest.raises(BackboneError, match="k must be at least 1"):
        index.search(["q"], unit_rows(1, seed=4), k=0)


@pytest.mark.parametrize(
    ("doc_ids", "embeddings", "message"),
    [
        (["a", "b"], np.eye(3, dtype=np.float32), "2 document ids but 3 embeddings"),
        (["a", "a"], np.eye(2, dtype=np.float32), "duplicate document id 'a'"),
        ([], np.zeros((0, 4), dtype=np.float32), "empty corpus"),
    ],
)
def test_bad_build_is_an_error(doc_ids: list[str], embeddings: np.ndarray, message: str) -> None:
    with pytest.raises(BackboneError, match=message):
        DenseIndex.build(doc_ids, embeddings)


def test_load_errors_name_the_file(corpus: tuple[list[str], np.ndarray], tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"index\.faiss: file not found"):
        DenseIndex.load(tmp_path)
    DenseIndex.build(*corpus).save(tmp_path)
    (tmp_path / "doc_ids.json").write_text('["only-one"]', encoding="utf-8")
    with pytest.raises(DataError, match=rf"doc_ids\.json: has 1 ids but index\.faiss holds {DOCS} vectors"):
        DenseIndex.load(tmp_path)
    (tmp_path / "doc_ids.json").write_text('{"a": 1}', encoding="utf-8")
    with pytest.raises(DataError, match="expected a JSON list of document id strings"):
        DenseIndex.load(tmp_path)
    (tmp_path / "index.faiss").write_bytes(b"not an index")
    with pytest.raises(DataError, match=r"index\.faiss: not a FAISS index"):
        DenseIndex.load(tmp_path)


def test_vectors_return_the_stored_embeddings_in_order(tmp_path: Path) -> None:
    embeddings = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)
    index = DenseIndex.build([f"d{i}" for i in range(5)], embeddings)
    index.save(tmp_path)
    np.testing.assert_array_equal(DenseIndex.load(tmp_path).vectors(), embeddings)
