"""A component process that dies or hangs on a real Serve: what clients see, what is counted, and the recovery.

The replicas run on this machine (a local head), so the tests stop them as an operator's bad day would: ``SIGKILL``
for a reranker replica that dies under load (Serve starts a new one), ``SIGSTOP`` for a retriever that hangs (alive
to Ray, answering nothing) until ``SIGCONT``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from leaks import leaks
from prometheus_client.parser import text_string_to_metric_families

from backbone.serving.cluster import ServeCluster

pytestmark = pytest.mark.cluster

QUERY = "谁可以成为个体工商户？"
CLIENTS = 4


def _degraded(served, application: str) -> float:
    """All degraded answers of ``application`` counted so far, whatever the reason."""
    text = served.http.get("/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "backbone_degraded_answers_total" and sample.labels.get("application") == application
    )


@contextmanager
def _load(served, body: dict) -> Iterator[list[tuple[float, int, dict]]]:
    """``CLIENTS`` clients posting ``body`` to /v1/search back to back; yields the answers as (time, status, body)."""
    answers: list[tuple[float, int, dict]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=str(served.http.base_url), timeout=60) as http:
            while not stop.is_set():
                answer = http.post("/v1/search", json=body)
                answers.append((time.monotonic(), answer.status_code, answer.json()))

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        yield answers
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def _wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.1)


def test_a_reranker_replica_killed_under_load_degrades_answers_then_recovers(served) -> None:
    killed_pids = served.replica_pids()["Reranker"]
    degraded_before = _degraded(served, "search")
    with _load(served, {"query": QUERY, "application": "search"}) as answers:
        _wait_for(lambda: sum(body.get("reranked") is True for _, _, body in answers) >= 5, 60, "reranked answers")
        for pid in killed_pids:
            os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()

        def recovered() -> bool:
            after = [body for at, _, body in answers if at > killed_at]
            first_degraded = next((i for i, body in enumerate(after) if body.get("reranked") is False), None)
            return first_degraded is not None and any(body.get("reranked") for body in after[first_degraded:])

        _wait_for(recovered, 120, "degraded answers, then reranked ones again")
    statuses = {status for _, status, _ in answers}
    assert statuses == {200}, [body for _, status, body in answers if status != 200][:3]
    degraded = [body for _, _, body in answers if body["reranked"] is False]
    assert all(body["rerank_error"].startswith("reranker") for body in degraded), degraded[:3]
    assert all(body["versions"]["reranker"] is None for body in degraded)
    assert not [body["rerank_error"] for body in degraded if leaks(body["rerank_error"])]
    # Every degraded answer was counted, none silently.
    assert _degraded(served, "search") - degraded_before == len(degraded)
    # Serve replaced the dead replica; the new one answers reranked.
    new_pids = served.replica_pids()["Reranker"]
    assert new_pids and not new_pids & killed_pids
    assert served.http.post("/v1/search", json={"query": QUERY, "application": "search"}).json()["reranked"] is True
    assert served.http.get("/readyz").status_code == 200


def test_a_hung_retriever_is_a_503_naming_it_within_its_deadline(served) -> None:
    cluster = ServeCluster(served.dashboard)
    config = cluster.deployed()
    gateway = next(d for d in config["applications"][0]["deployments"] if d["name"] == "Gateway")["user_config"]
    gateway["retrieve_timeout_s"] = 1.5
    cluster.apply(config)
    hung = served.replica_pids()["Retriever"]
    try:
        for pid in hung:
            os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        refused = served.http.post("/v1/search", json={"query": QUERY})
        waited = time.monotonic() - started
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "retriever: no answer within 1.5 s"
        assert refused.json()["request_id"] == refused.headers["x-request-id"] and not leaks(refused.text)
        assert 1.5 <= waited < 4.0, waited
        not_ready = served.http.get("/readyz")
        assert (not_ready.status_code, not_ready.json()["error"]) == (503, "retriever: no answer within 1.5 s")
        assert served.http.get("/healthz").json()["status"] == "ok"  # liveness: the gateway itself answers
    finally:
        for pid in hung:
            os.kill(pid, signal.SIGCONT)
        gateway["retrieve_timeout_s"] = 10.0
        cluster.apply(config)
    # The same replica answers again (it was hung, not dead).
    assert served.replica_pids()["Retriever"] == hung
    assert served.http.post("/v1/search", json={"query": QUERY}).json()["reranked"] is True
