"""Serve autoscaling: under a bounded load the retriever's replicas rise, and they fall back once the load stops."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from backbone.serving.cluster import ServeCluster

pytestmark = pytest.mark.cluster

CLIENTS = 12
LOAD_S = 30  # the most the load runs; it stops as soon as an added replica runs
SCALING = {
    "retriever": {
        "autoscaling": {
            "min_replicas": 1,
            "max_replicas": 3,  # with the reranker's, 2 CPUs of half-CPU replicas: the head's 2 CPUs
            "target_ongoing_requests": 1,
            "upscale_delay_s": 1,
            "downscale_delay_s": 3,
        }
    }
}


def test_retriever_replicas_rise_under_load_and_fall_after_it(served, tmp_path: Path) -> None:
    scaling = tmp_path / "scaling.yaml"
    scaling.write_text(yaml.safe_dump(SCALING))
    served.deploy("--scaling", str(scaling))
    deployed = ServeCluster(served.dashboard).deployed()["applications"][0]["deployments"]
    assert {d["name"]: d.get("autoscaling_config", {}).get("max_replicas") for d in deployed} == {
        "Retriever": 3,
        "Reranker": 1,
        "Gateway": None,
    }
    stop = threading.Event()
    answered: list[int] = []

    def client(number: int) -> None:
        with httpx.Client(base_url=served.http.base_url, timeout=30) as http:
            while not stop.is_set():
                body = {"input": [f"合同的效力 {number}"] * 4, "model": "backbone"}
                answered.append(http.post("/v1/embeddings", json=body).status_code)

    def replicas() -> tuple[int, int]:
        """The retriever's running replicas and the count Serve scales it to, as ``backbone status`` reports them."""
        retriever = json.loads(served.cli("status", "--json"))["deployments"]["Retriever"]
        return retriever["replicas"], retriever["target_replicas"]

    try:
        counts = [replicas()]
        threads = [threading.Thread(target=client, args=(number,)) for number in range(CLIENTS)]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        while time.monotonic() - started < LOAD_S and counts[-1][0] < 2:
            time.sleep(0.5)
            counts.append(replicas())
        stop.set()
        for thread in threads:
            thread.join()
        stopped = time.monotonic()
        while time.monotonic() - stopped < 60 and counts[-1] != (1, 1):
            time.sleep(0.5)
            counts.append(replicas())
        print(f"retriever (running, target) replicas every 0.5 s: {counts}; {len(answered)} requests in the load")
        target = [count[1] for count in counts]
        assert counts[0] == (1, 1) and counts[-1] == (1, 1)  # one replica before the load and again after it
        # Under load Serve scaled the retriever out. An added replica starts a Python with torch: about 40 s on a
        # loaded 2-core machine, so it may still be starting when the bounded load stops (then it is stopped again).
        assert max(target) >= 2
        assert answered and set(answered) == {200}
    finally:
        stop.set()
        served.deploy()  # back to one fixed replica for the other serving tests
