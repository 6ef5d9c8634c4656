"""API keys on the served gateway: 401 without, 200 with, /healthz open, the keys never in a config or a log.

The test deploys the served release again with a key (only the gateway's config changes, no replica restarts)
and, whatever happens, deploys it again without keys so that the other serving tests find it open.
"""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backbone.cli import app
from backbone.serving.cluster import ServeCluster

QUERY = "谁可以成为个体工商户？"


def test_a_gateway_with_api_keys_answers_only_requests_with_one(served, monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"key-{uuid.uuid4().hex}"
    pids = served.replica_pids()
    monkeypatch.setenv("BACKBONE_API_KEYS", key)
    try:
        assert "1 API key(s) asked" in served.deploy()

        assert served.http.get("/healthz").status_code == 200  # liveness stays open
        refused = served.http.get("/v1/info")
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        assert refused.json()["error"] == "Authorization: no API key; send 'Authorization: Bearer KEY'"
        wrong = served.http.post("/v1/search", json={"query": QUERY}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "a wrong API key" in wrong.json()["error"]
        answer = served.http.post(
            "/v1/search", json={"query": QUERY, "application": "default"}, headers={"Authorization": f"Bearer {key}"}
        )
        assert answer.status_code == 200 and answer.json()["reranked"] is True, answer.text

        # What Serve runs holds the key's hash, never the key.
        deployed = str(ServeCluster(served.dashboard).deployed())
        assert key not in deployed and "sha256:" in deployed
        # Deploying again without keys would open the API silently: refused, nothing applied.
        monkeypatch.delenv("BACKBONE_API_KEYS")
        again = CliRunner().invoke(
            app,
            ["deploy", served.release.record.name, "--registry", served.release.registry.uri,
             "--port", str(served.http.base_url.port), "--address", served.dashboard],
        )  # fmt: skip
        refusal = f"{again.output}{again.exception}"  # the CLI's entry point prints it; CliRunner keeps it raised
        assert again.exit_code != 0 and "the served gateway asks for API keys" in refusal, refusal
        assert served.http.get("/v1/info").status_code == 401
    finally:
        monkeypatch.delenv("BACKBONE_API_KEYS", raising=False)
        served.deploy("--allow-unauthenticated")
    assert served.http.get("/v1/info").status_code == 200
    assert served.replica_pids() == pids  # keys on and off changed only the gateway's config
    logs = Path(tempfile.gettempdir()) / "ray"
    assert any(logs.glob("session_*/logs/serve/*Gateway*")), "no gateway log to search"
    leaked = subprocess.run(["grep", "-rl", "-D", "skip", key, str(logs)], capture_output=True, text=True, timeout=120)
    assert leaked.stdout == "", f"the key is in {leaked.stdout}"
