"""The gateway's refusals without a cluster: request ids on every answer, error bodies, and no leaked detail.

The FastAPI app here is built from the gateway's own middleware and handlers; tests/serve checks them through Serve.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from backbone.serving.gateway import Gateway
from backbone.serving.http_errors import BodySizeLimit, RequestId, install_error_handlers


@pytest.fixture
def client() -> TestClient:
    api = FastAPI()
    install_error_handlers(api)
    api.add_middleware(BodySizeLimit, limit=lambda: 100)
    api.add_middleware(RequestId)

    @api.post("/echo")
    async def echo(body: dict[str, int]) -> dict[str, int]:
        return body

    @api.get("/refuse")
    async def refuse() -> None:
        raise HTTPException(404, "application: unknown 'x'")

    return TestClient(api)


def test_a_plain_client_request_id_names_the_refusal_and_a_bad_one_is_replaced(client: TestClient) -> None:
    answer = client.get("/refuse", headers={"X-Request-Id": "client-42.a_b"})
    assert answer.json()["request_id"] == "client-42.a_b"

    for bad in ("has space", "x" * 65, "a/b", "<script>"):
        replaced = client.get("/refuse", headers={"X-Request-Id": bad}).json()["request_id"]
        assert replaced != bad and len(replaced) == 32
    first, second = (client.get("/refuse").json()["request_id"] for _ in range(2))
    assert first != second


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("get", "/refuse", None, 404, "application: unknown 'x'"),
        ("post", "/echo", {"a": "many"}, 422, "body.a: Input should be a valid integer"),
        ("post", "/echo", {"a": 1, "pad": 10**120}, 413, "request body: larger than the limit of 100 bytes"),
    ],
)
def test_every_refusal_names_its_request_id(
    client: TestClient, method: str, path: str, body: object, status: int, error: str
) -> None:
    answer = getattr(client, method)(
        path, **({"json": body} if body is not None else {}), headers={"X-Request-Id": "r1"}
    )
    assert answer.status_code == status
    assert answer.json()["error"].startswith(error)
    assert answer.json()["request_id"] == "r1" and set(answer.json()) == {"error", "request_id"}


def test_a_component_failure_is_a_generic_503_and_its_detail_goes_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    call = Gateway.func_or_class._call  # the gateway's own: it needs nothing of the instance
    detail = "RayTaskError(ValueError): ray::Reranker.score() (pid=4242, ip=10.0.0.7) File /srv/backbone/x.py"

    async def failing() -> None:
        raise RuntimeError(detail)

    serve_logger = logging.getLogger("ray.serve")  # Serve's own logger does not propagate to the root
    serve_logger.addHandler(caplog.handler)
    try:
        with pytest.raises(HTTPException) as refused:
            asyncio.run(call(None, failing(), 1.0, "reranker", "score"))
    finally:
        serve_logger.removeHandler(caplog.handler)

    assert refused.value.status_code == 503
    assert refused.value.detail == "reranker failed (request -; the detail is logged)"
    assert not any(leak in refused.value.detail for leak in ("pid", "10.0.0.7", "/srv", "Traceback"))
    assert detail in caplog.text and "request -: reranker failed: RuntimeError" in caplog.text
