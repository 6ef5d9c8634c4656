"""Bounded queues on a real Serve: a burst past them is refused at once with 503 and Retry-After, never left waiting.

The test deploys the tiny release with small queues (``backbone deploy --scaling``): the gateway takes 4 requests at
once and lets 2 wait; the reranker takes 1 and lets 1 wait. A burst of concurrent requests then meets both limits.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from leaks import leaks

QUERY = "谁可以成为个体工商户？"
BURST = 48
SMALL_QUEUES = """\
gateway: {queues: {max_ongoing_requests: 4, max_queued_requests: 2}}
reranker: {queues: {max_ongoing_requests: 1, max_queued_requests: 1}}
retry_after_s: 2.5
"""


def _burst(served, path: str, body: dict) -> list[httpx.Response]:
    url = f"{served.http.base_url}{path}"
    with ThreadPoolExecutor(BURST) as pool:
        return list(pool.map(lambda _: httpx.post(url, json=body, timeout=60), range(BURST)))


def _degraded_busy(served) -> float:
    text = served.http.get("/metrics").text
    found = re.search(r'backbone_degraded_answers_total\{application="search",reason="busy"\} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def test_a_burst_past_the_queues_is_refused_at_once_with_retry_after(served, tmp_path: Path) -> None:
    scaling = tmp_path / "small-queues.yaml"
    scaling.write_text(SMALL_QUEUES)
    served.deploy("--scaling", str(scaling))
    try:
        busy_before = _degraded_busy(served)
        searches = _burst(served, "/v1/search", {"query": QUERY, "application": "search"})
        documents = ["自然人从事工商业经营，经依法登记，为个体工商户。" * 20] * 64
        reranks = _burst(served, "/v1/rerank", {"query": QUERY, "documents": documents})
        for answer in searches + reranks:
            assert answer.status_code in (200, 503), answer.text
            assert not leaks(answer.text), answer.text
            if answer.status_code == 503:  # refused for a full queue: says when to come back (2.5 s, rounded up)
                assert answer.headers.get("retry-after") == "3", (answer.headers, answer.text)
        # Some of each burst was refused (the gateway's queue), some answered.
        assert {answer.status_code for answer in searches} == {200, 503}
        assert {answer.status_code for answer in reranks} == {200, 503}
        # A search whose reranker was busy still answers, in the retriever's order, and says so; it is counted.
        answered = [answer.json() for answer in searches if answer.status_code == 200]
        busy = [body for body in answered if body["reranked"] is False]
        assert busy, "no search met a busy reranker"
        assert all(body["rerank_error"].startswith("reranker: busy") for body in busy), busy
        assert _degraded_busy(served) - busy_before == len(busy)
        # Nothing was left queued: once the burst is over, a single request answers, reranked.
        assert served.http.post("/v1/search", json={"query": QUERY}).json()["reranked"] is True
    finally:
        served.deploy()
    assert served.http.post("/v1/search", json={"query": QUERY}).json()["reranked"] is True
