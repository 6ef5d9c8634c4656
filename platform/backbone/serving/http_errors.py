"""How the gateway refuses bad requests: a body size limit, one-line JSON errors naming the request part, and a
request id in every error body (Serve's ``X-Request-Id``) that ties an answer to the gateway's log line about it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_request_id: ContextVar[str] = ContextVar("request_id", default="-")


def request_id() -> str:
    """The id of the request being answered (``-`` outside a request)."""
    return _request_id.get()


class RequestId:
    """ASGI middleware giving every request an id: the ``X-Request-Id`` it came with if that is a plain token of at
    most 64 characters, else a new one. Behind Ray Serve the proxy sets that header (the client's id, or its own)
    and returns it on the answer, so the id in an error body is the one in the answer's header.

    Example:
        >>> api.add_middleware(RequestId)  # doctest: +SKIP
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        token = _request_id.set(given if _CLIENT_ID.match(given) else uuid.uuid4().hex)
        try:
            await self.app(scope, receive, send)
        finally:
            _request_id.reset(token)


def error_body(message: str) -> dict[str, str]:
    """The JSON body of every refusal: the message and the request's id."""
    return {"error": message, "request_id": request_id()}


class BodyTooLargeError(Exception):
    """A request body went past the limit while being read."""


class BodySizeLimit:
    """ASGI middleware answering 413 to a body over ``limit()`` bytes, declared or streamed, before it is parsed.

    Args:
        app: the application to protect.
        limit: returns the current limit in bytes (it follows the gateway's config).

    Example:
        >>> api.add_middleware(BodySizeLimit, limit=lambda: 1_048_576)  # doctest: +SKIP
    """

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError:
            if not started:
                await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(error_body(f"request body: larger than the limit of {limit} bytes"), status_code=413)


def install_error_handlers(api: FastAPI) -> None:
    """Answer every refused request with ``{"error": "...", "request_id": "..."}``: 400 malformed JSON, 422 invalid
    fields, and the gateway's own refusals (404, 413, 422, 503).

    Example:
        >>> install_error_handlers(api)  # doctest: +SKIP
    """

    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = err.errors()
        malformed = [problem for problem in problems if problem["type"] == "json_invalid"]
        if malformed:
            context = malformed[0].get("ctx", {}).get("error", "")
            return JSONResponse(error_body(f"request body: malformed JSON ({context})"), status_code=400)
        return JSONResponse(error_body("; ".join(_describe(problem) for problem in problems)), status_code=422)

    @api.exception_handler(HTTPException)
    async def refused(_: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(err.detail)), status_code=err.status_code, headers=err.headers)


def _describe(problem: dict[str, Any]) -> str:
    """``body.documents.3: Input should be a valid string`` from one pydantic error."""
    where = ".".join(str(part) for part in problem["loc"])
    return f"{where}: {problem['msg']}"
