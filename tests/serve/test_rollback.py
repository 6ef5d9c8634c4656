"""Upgrading and rolling back one component: the other's replicas keep running, and under load nothing fails."""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict

import httpx
import pytest

from backbone.registry import Releases

pytestmark = pytest.mark.cluster

CLIENTS = 8
QUERY = "谁可以成为个体工商户？"


def test_promoting_and_rolling_back_the_reranker_leaves_the_retriever_replicas(served) -> None:
    name, releases = served.release.record.name, Releases(served.release.registry)
    before = served.versions()
    pids = served.replica_pids()
    assert set(pids) == {"Retriever", "Reranker", "Gateway"}

    releases.promote(name, "reranker", served.release.other_reranker, note="test upgrade")
    served.deploy()
    upgraded = served.versions()
    assert upgraded["reranker"] == served.release.other_reranker
    assert (upgraded["retriever"], upgraded["index"]) == (before["retriever"], before["index"])
    assert served.replica_pids()["Retriever"] == pids["Retriever"]

    output = served.cli("rollback", "reranker", "--note", "test rollback")
    assert f"rollback reranker to v{before['release_version']}" in output
    rolled_back = served.versions()
    assert rolled_back["reranker"] == before["reranker"]
    assert rolled_back["release_version"] == releases.current(name).version == upgraded["release_version"] + 1
    assert releases.current(name).note == "test rollback"
    assert served.replica_pids()["Retriever"] == pids["Retriever"]

    status = served.cli("status")
    assert f"{name} v{rolled_back['release_version']}: RUNNING" in status
    assert before["reranker"] in status


def test_rolling_back_the_retriever_under_load_fails_no_request_and_switches_once(served) -> None:
    name, releases = served.release.record.name, Releases(served.release.registry)
    new_checkpoint, new_index = served.release.other_retriever
    releases.promote(name, "retriever", new_checkpoint, index=new_index)
    served.deploy()
    old = (new_checkpoint, new_index)
    reranker_pids = served.replica_pids()["Reranker"]

    answers: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    failures: list[str] = []
    stop = threading.Event()

    def client(number: int) -> None:
        with httpx.Client(base_url=str(served.http.base_url), timeout=30) as http:
            while not stop.is_set():
                try:
                    answer = http.post("/v1/search", json={"query": f"{QUERY} {number}"})
                except httpx.HTTPError as err:
                    failures.append(f"client {number}: {err!r}")
                    continue
                if answer.status_code != 200:
                    failures.append(f"client {number}: {answer.status_code} {answer.text}")
                    continue
                versions = answer.json()["versions"]
                answers[number].append((versions["retriever"], versions["index"], versions["reranker"]))

    threads = [threading.Thread(target=client, args=(number,)) for number in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(6)  # steady load before the change
        output = served.cli("rollback", "retriever")
        time.sleep(6)  # and after it
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    assert "rollback retriever" in output
    new = (served.release.record.retriever.checkpoint, served.release.record.retriever.index)
    assert not failures, failures[:5]
    assert served.replica_pids()["Reranker"] == reranker_pids
    for number in range(CLIENTS):
        seen = [(retriever, index) for retriever, index, _ in answers[number]]
        assert set(seen) <= {old, new}, f"client {number} saw a retriever with another checkpoint's index: {seen}"
        switches = sum(1 for earlier, later in itertools.pairwise(seen) if earlier != later)
        assert seen[0] == old and seen[-1] == new and switches == 1, f"client {number}: {seen}"
        assert len({reranker for _, _, reranker in answers[number]}) == 1
