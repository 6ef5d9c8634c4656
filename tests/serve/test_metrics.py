"""``/metrics`` scraped from the served gateway before and after traffic: the counters move, degraded answers too."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from backbone.serving.cluster import ServeCluster

QUERY = "谁可以成为个体工商户？"


def _scrape(served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = served.http.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def _moved(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_requests_latencies_and_degraded_answers(served) -> None:
    cluster = ServeCluster(served.dashboard)
    config = cluster.deployed()
    gateway = next(d for d in config["applications"][0]["deployments"] if d["name"] == "Gateway")["user_config"]
    before = _scrape(served)

    assert served.http.post("/v1/search", json={"query": QUERY}).json()["reranked"] is True
    assert served.http.post("/v1/search", json={"query": QUERY, "application": "nope"}).status_code == 404
    assert served.http.post("/v1/rerank", json={"query": QUERY, "documents": ["a", "b"]}).status_code == 200
    gateway["rerank_timeout_s"] = 1e-6
    cluster.apply(config)
    try:
        assert served.http.post("/v1/search", json={"query": QUERY}).json()["reranked"] is False
    finally:
        gateway["rerank_timeout_s"] = 2.0
        cluster.apply(config)
    after = _scrape(served)

    search = {"route": "/v1/search"}
    assert _moved(before, after, "backbone_requests_total", **search, application="default", status="200") == 2
    assert _moved(before, after, "backbone_requests_total", **search, application="", status="404") == 1
    assert _moved(before, after, "backbone_degraded_answers_total", application="default", reason="timeout") == 1
    waits = "backbone_component_seconds_count"
    assert _moved(before, after, waits, component="reranker", call="score", outcome="ok") == 1
    assert _moved(before, after, waits, component="reranker", call="score", outcome="timeout") == 1
    # /v1/rerank has a batch queue of its own on the replica (score_documents), apart from the searches' (score).
    assert _moved(before, after, waits, component="reranker", call="rerank", outcome="ok") == 1
    assert _moved(before, after, waits, component="retriever", call="search", outcome="ok") == 2
    assert _moved(before, after, "backbone_request_seconds_count", route="/v1/search") == 3
    version = served.http.get("/v1/info").json()["release_version"]
    assert after[("backbone_release_version", (("release", served.release.record.name),))] == version
