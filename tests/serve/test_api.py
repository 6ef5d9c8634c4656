"""Every endpoint of the served release over real HTTP, and bad inputs that must get a clear 4xx."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import yaml
from leaks import leaks

from backbone.serving.cluster import ServeCluster
from backbone.serving.config import RerankerConfig
from backbone.serving.reranker import LoadedReranker

pytestmark = pytest.mark.cluster

QUERY = "谁可以成为个体工商户？"


def test_search_reranks_for_an_application_that_does(served) -> None:
    answer = served.http.post("/v1/search", json={"query": QUERY})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    record = served.release.record
    assert body["reranked"] is True and body["application"] == "default"
    assert body["versions"] == {
        "retriever": record.retriever.checkpoint,
        "index": record.retriever.index,
        "reranker": record.reranker.checkpoint,
    }
    assert [hit["rank"] for hit in body["results"]] == [1, 2, 3]  # the application's top_n
    scores = [hit["score"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert all(hit["doc_id"].startswith("d") and hit["title"] and hit["text"] for hit in body["results"])


def test_search_without_reranking_keeps_the_retriever_order(served) -> None:
    body = served.http.post("/v1/search", json={"query": QUERY, "application": "fast", "top_n": 4}).json()
    assert body["reranked"] is False and body["rerank_error"] is None
    assert body["versions"]["reranker"] is None
    assert [hit["score"] for hit in body["results"]] == [hit["retriever_score"] for hit in body["results"]]
    assert len(body["results"]) == 4
    # More results than the application's k (5 candidates) answers k, as a schema-valid request must be accepted.
    wide = served.http.post("/v1/search", json={"query": QUERY, "application": "fast", "top_n": 9}).json()
    assert len(wide["results"]) == 5


def test_unknown_application_is_a_404_listing_the_known_ones(served) -> None:
    answer = served.http.post("/v1/search", json={"query": QUERY, "application": "nope"})
    assert answer.status_code == 404
    assert answer.json()["error"] == "application: unknown 'nope'; known applications: default, fast, search"


def test_embeddings_are_openai_compatible(served) -> None:
    floats = served.http.post("/v1/embeddings", json={"input": [QUERY, "合同"], "model": "any"}).json()
    assert floats["object"] == "list" and floats["model"] == served.release.record.retriever.checkpoint
    assert [item["index"] for item in floats["data"]] == [0, 1]
    vectors = np.array([item["embedding"] for item in floats["data"]])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert floats["usage"]["prompt_tokens"] == floats["usage"]["total_tokens"] > 0
    packed = served.http.post("/v1/embeddings", json={"input": QUERY, "encoding_format": "base64"}).json()
    unpacked = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(unpacked, vectors[0], rtol=1e-5)
    passages = served.http.post("/v1/embeddings", json={"input": QUERY, "input_type": "passage"}).json()
    assert len(passages["data"][0]["embedding"]) == vectors.shape[1]


def test_rerank_is_cohere_compatible(served) -> None:
    documents = ["自然人从事工商业经营，经依法登记，为个体工商户。", {"text": "婚姻财产"}, "公司赔偿"]
    answer = served.http.post(
        "/v1/rerank", json={"query": QUERY, "documents": documents, "top_n": 2, "return_documents": True}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert answer.headers["x-backbone-reranker"] == body["model"] == served.release.record.reranker.checkpoint
    results = body["results"]
    texts = [doc if isinstance(doc, str) else doc["text"] for doc in documents]
    # The same checkpoint loaded here scores the plain passages: the answer is its top 2, as sigmoids of its logits.
    reranker = LoadedReranker.load(
        RerankerConfig(registry=served.release.registry.uri, checkpoint=served.release.record.reranker.checkpoint)
    )
    logits = reranker.score([QUERY] * len(texts), texts).astype(np.float64)
    best = np.argsort(-logits, kind="stable")[:2]
    assert [result["index"] for result in results] == best.tolist()
    np.testing.assert_allclose([r["relevance_score"] for r in results], 1 / (1 + np.exp(-logits[best])), rtol=1e-5)
    assert [result["document"]["text"] for result in results] == [texts[result["index"]] for result in results]
    plain = served.http.post("/v1/rerank", json={"query": QUERY, "documents": texts}).json()["results"]
    assert len(plain) == 3 and all("document" not in result for result in plain)
    # top_n past the documents answers every document once (Cohere's behaviour).
    every = served.http.post("/v1/rerank", json={"query": QUERY, "documents": texts, "top_n": 7}).json()["results"]
    assert sorted(result["index"] for result in every) == [0, 1, 2]


def test_info_health_and_openapi(served) -> None:
    info = served.http.get("/v1/info").json()
    assert info["release"] == served.release.record.name
    assert info["retriever"]["max_lengths"] == {"query": 32, "passage": 64}
    assert info["reranker"]["max_lengths"] == {"query": 32, "pair": 96}
    assert (info["retriever"]["precision"], info["reranker"]["precision"]) == ("fp32", "fp32")  # the checkpoints' own
    assert info["retriever"]["documents"] == 24
    # The replicas read those documents from the index artifact on S3: no dataset folder is named to them.
    retriever = next(d for d in ServeCluster(served.dashboard).deployed()["applications"][0]["deployments"]
                     if d["name"] == "Retriever")  # fmt: skip
    assert retriever["user_config"]["documents"] is None
    assert served.http.get("/healthz").json() == {"status": "ok", "release": served.release.record.name}
    ready = served.http.get("/readyz", headers={"X-Request-Id": "probe-1"})
    assert ready.status_code == 200 and ready.headers["x-request-id"] == "probe-1"
    record = served.release.record
    assert ready.json() == {
        "status": "ready",
        "release": record.name,
        "versions": {
            "retriever": record.retriever.checkpoint,
            "index": record.retriever.index,
            "reranker": record.reranker.checkpoint,
        },
    }
    assert served.http.get("/docs").status_code == 200
    schema = served.http.get("/openapi.json").json()
    assert {"/v1/search", "/v1/embeddings", "/v1/rerank", "/v1/info", "/healthz", "/readyz"} <= set(schema["paths"])
    search = schema["components"]["schemas"]["SearchRequest"]
    assert search["examples"][0]["query"] == QUERY
    # The document declares the limits this gateway enforces and the release's applications (openapi.py).
    assert search["properties"]["query"]["maxLength"] == info["limits"]["max_query_chars"]
    assert search["properties"]["application"]["enum"] == ["default", "fast", "search"]


BAD_REQUESTS = [
    ("/v1/search", b'{"query": "x"', 400, "request body: malformed JSON"),
    ("/v1/search", {"query": ""}, 422, "body.query: String should have at least 1 character"),
    ("/v1/search", {"query": "   "}, 422, "body.query: Value error, must contain some text"),
    ("/v1/search", {"query": 5}, 422, "body.query: Input should be a valid string"),
    ("/v1/search", {"query": "x" * 2001}, 422, "query characters: 2001 is over the limit of 2000"),
    ("/v1/search", {"query": "x", "top_n": 101}, 422, "top_n: 101 is over the limit of 100"),
    ("/v1/search", {"query": "x", "top_n": "many"}, 422, "body.top_n: Input should be a valid integer"),
    ("/v1/search", {"query": "x", "k": 3}, 422, "body.k: Extra inputs are not permitted"),
    ("/v1/search", ["x"], 422, "body: Input should be a valid dictionary"),
    ("/v1/embeddings", {"input": []}, 422, "body.input: Value error, must hold at least one text"),
    ("/v1/embeddings", {"input": ["a", ""]}, 422, "text 1 is empty"),
    ("/v1/embeddings", {"input": ["a"] * 257}, 422, "input texts: 257 is over the limit of 256"),
    ("/v1/embeddings", {"input": "a", "encoding_format": "int8"}, 422, "body.encoding_format"),
    ("/v1/rerank", {"query": "x", "documents": []}, 422, "body.documents: List should have at least 1 item"),
    ("/v1/rerank", {"query": "x", "documents": ["a"] * 257}, 422, "documents: 257 is over the limit of 256"),
    ("/v1/rerank", {"query": "x", "documents": [1]}, 422, "body.documents.0"),
    ("/v1/rerank", {"query": "x", "documents": ["a"], "top_n": 101}, 422, "top_n: 101 is over the limit of 100"),
    ("/v1/rerank", {"query": "x", "documents": ["a" * 20001]}, 422, "documents.0 characters: 20001 is over"),
    ("/v1/rerank", {"query": "x", "documents": ["a" * 2_000_000]}, 413, "request body: larger than the limit"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), BAD_REQUESTS)
def test_bad_input_gets_a_clear_4xx(served, path: str, body: object, status: int, message: str) -> None:
    if isinstance(body, bytes):
        answer = served.http.post(path, content=body, headers={"content-type": "application/json"})
    else:
        answer = served.http.post(path, json=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert answer.json()["request_id"] == answer.headers["x-request-id"] != ""
    assert not leaks(answer.text), answer.text


def test_bad_inputs_crashed_no_replica(served) -> None:
    before = served.replica_pids()
    for path, body, _, _ in BAD_REQUESTS:
        served.http.post(path, json=body) if not isinstance(body, bytes) else served.http.post(path, content=body)
    assert served.http.post("/v1/search", json={"query": QUERY}).status_code == 200
    assert served.replica_pids() == before


def test_a_missed_reranker_deadline_answers_the_retriever_ranking(served) -> None:
    cluster = ServeCluster(served.dashboard)
    config = cluster.deployed()
    gateway = next(d for d in config["applications"][0]["deployments"] if d["name"] == "Gateway")["user_config"]
    gateway["rerank_timeout_s"] = 1e-6
    served.http.post("/v1/search", json={"query": QUERY})
    cluster.apply(config)
    try:
        body = served.http.post("/v1/search", json={"query": QUERY}).json()
        assert body["reranked"] is False
        assert body["rerank_error"] == "reranker: no answer within 1e-06 s"
        assert [hit["score"] for hit in body["results"]] == [hit["retriever_score"] for hit in body["results"]]
        # /v1/rerank keeps its own deadline (rerank_endpoint_timeout_s), untouched by the search's.
        reranked = served.http.post("/v1/rerank", json={"query": QUERY, "documents": ["a", "b"]})
        assert reranked.status_code == 200 and len(reranked.json()["results"]) == 2, reranked.text
    finally:
        gateway["rerank_timeout_s"] = 2.0
        cluster.apply(config)
    assert served.http.post("/v1/search", json={"query": QUERY}).json()["reranked"] is True


def test_an_applications_own_reranker_deadline_and_policy_apply(served) -> None:
    cluster = ServeCluster(served.dashboard)
    config = cluster.deployed()
    gateway = next(d for d in config["applications"][0]["deployments"] if d["name"] == "Gateway")["user_config"]
    applications = gateway["applications"]
    applications["default"]["rerank_timeout_s"] = 1e-6  # what a search sets from measured cost; the gateway's is 2 s
    applications["search"].update(rerank_timeout_s=1e-6, without_reranker="unavailable")
    cluster.apply(config)
    try:
        tight = served.http.post("/v1/search", json={"query": QUERY, "application": "default"}).json()
        assert (tight["reranked"], tight["rerank_error"]) == (False, "reranker: no answer within 1e-06 s")
        refused = served.http.post("/v1/search", json={"query": QUERY, "application": "search"})
        assert refused.status_code == 503
        assert refused.json()["error"] == "reranker: no answer within 1e-06 s"
    finally:
        applications["default"]["rerank_timeout_s"] = None
        applications["search"].update(rerank_timeout_s=None, without_reranker="retriever")
        cluster.apply(config)
    for application in ("default", "search"):
        assert served.http.post("/v1/search", json={"query": QUERY, "application": application}).json()["reranked"]


def test_the_written_config_is_a_valid_serve_deploy_config(served) -> None:
    from ray.serve.schema import ServeDeploySchema

    text = served.config_path.read_text()
    assert text.startswith("# Written by `backbone deploy`. Apply: serve deploy")
    config = ServeDeploySchema.model_validate(yaml.safe_load(text))
    assert config.http_options.host == "127.0.0.1"
