"""API keys without a cluster: the middleware, the key hashes in the gateway's config, reading keys, exposure."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from backbone.errors import BackboneError
from backbone.registry import AppSettings
from backbone.serving.auth import ApiKeys, check_exposure, hash_api_key, read_api_keys
from backbone.serving.config import GatewayConfig
from backbone.serving.http_errors import RequestId

KEYS = ["first-key", "second-key"]


def _client(hashes: list[str]) -> TestClient:
    """A small app behind the gateway's middleware stack (request ids outermost, then keys)."""
    api = FastAPI()
    api.add_middleware(ApiKeys, hashes=lambda: hashes)
    api.add_middleware(RequestId)

    @api.get("/v1/info")
    def info() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return TestClient(api)


@pytest.mark.parametrize("key", KEYS)
def test_each_configured_key_passes(key: str) -> None:
    answer = _client([hash_api_key(k) for k in KEYS]).get("/v1/info", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({}, "no API key"),
        ({"Authorization": "Bearer third-key"}, "a wrong API key"),
        ({"Authorization": "Basic Zmlyc3Qta2V5"}, "a wrong API key"),  # another scheme, even with a key
        ({"Authorization": "Bearer"}, "a wrong API key"),
        ({"Authorization": f"Bearer {hash_api_key('first-key')}"}, "a wrong API key"),  # the hash is not the key
    ],
)
def test_a_request_without_a_valid_key_is_a_401(headers: dict[str, str], problem: str) -> None:
    answer = _client([hash_api_key(k) for k in KEYS]).get("/v1/info", headers={**headers, "X-Request-Id": "r-1"})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.json() == {
        "error": f"Authorization: {problem}; send 'Authorization: Bearer KEY'",
        "request_id": "r-1",
    }


def test_the_scheme_is_case_insensitive_and_healthz_stays_open() -> None:
    client = _client([hash_api_key("first-key")])
    assert client.get("/v1/info", headers={"Authorization": "bearer first-key"}).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_without_hashes_no_key_is_asked() -> None:
    assert _client([]).get("/v1/info").status_code == 200


def test_the_gateway_config_holds_hashes_and_refuses_a_raw_key() -> None:
    settings = {"release": "r", "release_version": 1, "applications": {"default": AppSettings(k=5, top_n=5)}}
    assert GatewayConfig(**settings, api_key_hashes=[hash_api_key("k")]).api_key_hashes == [hash_api_key("k")]
    with pytest.raises(ValidationError, match=r"api_key_hashes\n  Value error, item 0 is not 'sha256:'"):
        GatewayConfig(**settings, api_key_hashes=["first-key"])


def test_keys_are_read_from_a_file_else_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# operators' keys\nfirst-key\n\n  second-key  \n", encoding="utf-8")
    monkeypatch.setenv("BACKBONE_API_KEYS", "env-1, env-2,")
    assert read_api_keys(keys) == ["first-key", "second-key"]
    assert read_api_keys() == ["env-1", "env-2"]
    monkeypatch.delenv("BACKBONE_API_KEYS")
    assert read_api_keys() == []


def test_a_bad_key_file_is_named(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("first-key\nsecond key\n", encoding="utf-8")
    with pytest.raises(BackboneError, match=rf"^{keys}:2: an API key has no whitespace inside it$"):
        read_api_keys(keys)
    with pytest.raises(BackboneError, match=r"^--api-keys-file .*missing: No such file or directory$"):
        read_api_keys(tmp_path / "missing")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_key(host: str) -> None:
    check_exposure(host, [], allow_unauthenticated=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5", "::", "head.internal"])
def test_an_exposed_host_needs_keys_or_an_explicit_opt_out(host: str) -> None:
    with pytest.raises(BackboneError, match=rf"^--host {host} exposes the API beyond this machine without API keys"):
        check_exposure(host, [], allow_unauthenticated=False)
    check_exposure(host, ["k"], allow_unauthenticated=False)
    check_exposure(host, [], allow_unauthenticated=True)
