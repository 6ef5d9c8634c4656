"""Optional API keys: ``Authorization: Bearer KEY`` on every route but ``/healthz``, checked against hashed keys.

The gateway's config holds only SHA-256 hashes of the keys (``sha256:<hex>``), never a key: the Serve config, the
dashboard and every log see hashes. A request's key is hashed and compared with each configured hash in constant
time (:func:`hmac.compare_digest`, every hash compared). With no hash configured the gateway asks for no key.

Operators hand keys to ``backbone deploy`` in ``$BACKBONE_API_KEYS`` (comma-separated) or a file (one a line), and the
same variable lets the CLI's own requests through (``deploy`` waits on ``/v1/info``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from backbone.errors import BackboneError
from backbone.serving.http_errors import error_body

API_KEYS_ENV = "BACKBONE_API_KEYS"
OPEN_PATHS = frozenset({"/healthz"})  # liveness probes carry no key
_PREFIX = "sha256:"


def hash_api_key(key: str) -> str:
    """The hash the gateway's config stores for ``key``.

    Example:
        >>> hash_api_key("secret")[:15]
        'sha256:2bb80d53'
    """
    return _PREFIX + hashlib.sha256(key.encode()).hexdigest()


def is_api_key_hash(value: str) -> bool:
    """Whether ``value`` is a hash as :func:`hash_api_key` writes it."""
    digest = value.removeprefix(_PREFIX)
    return value.startswith(_PREFIX) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def read_api_keys(path: Path | None = None) -> list[str]:
    """The keys an operator gave: the file ``path`` (one a line; blank lines and ``#`` comments skipped), else
    ``$BACKBONE_API_KEYS`` (comma-separated), else none.

    Raises:
        BackboneError: the file cannot be read, or a key has whitespace inside it (named by file and line).

    Example:
        >>> read_api_keys()  # with BACKBONE_API_KEYS unset  # doctest: +SKIP
        []
    """
    if path is None:
        keys = [(f"${API_KEYS_ENV}", key.strip()) for key in os.environ.get(API_KEYS_ENV, "").split(",")]
    else:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise BackboneError(f"--api-keys-file {path}: {err.strerror or err}") from None
        keys = [(f"{path}:{number}", line.strip()) for number, line in enumerate(lines, start=1)]
    found = []
    for where, key in keys:
        if not key or key.startswith("#"):
            continue
        if any(c.isspace() for c in key):
            raise BackboneError(f"{where}: an API key has no whitespace inside it")
        found.append(key)
    return found


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the HTTP proxy on this machine (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, api_keys: Sequence[str], allow_unauthenticated: bool) -> None:
    """Refuse to bind a non-loopback ``host`` without API keys unless the operator said so.

    Raises:
        BackboneError: ``host`` is reachable from other machines, no key is set and ``allow_unauthenticated`` is off.

    Example:
        >>> check_exposure("127.0.0.1", [], allow_unauthenticated=False)
    """
    if not api_keys and not is_loopback(host) and not allow_unauthenticated:
        raise BackboneError(
            f"--host {host} exposes the API beyond this machine without API keys: set ${API_KEYS_ENV} or "
            "--api-keys-file, or pass --allow-unauthenticated to serve it open"
        )


class ApiKeys:
    """ASGI middleware answering 401 to a request without a valid ``Authorization: Bearer KEY``.

    Args:
        app: the application to protect.
        hashes: returns the current key hashes (they follow the gateway's config); none: every request passes.

    Example:
        >>> api.add_middleware(ApiKeys, hashes=lambda: [hash_api_key("secret")])  # doctest: +SKIP
    """

    def __init__(self, app: ASGIApp, hashes: Callable[[], Sequence[str]]) -> None:
        self.app = app
        self.hashes = hashes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hashes = self.hashes()
        if scope["type"] != "http" or not hashes or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, key = given.partition(" ")
        if scheme.lower() == "bearer" and key and _matches(hash_api_key(key.strip()), hashes):
            await self.app(scope, receive, send)
            return
        problem = "a wrong API key" if given else "no API key"
        answer = JSONResponse(
            error_body(f"Authorization: {problem}; send 'Authorization: Bearer KEY'"),
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await answer(scope, receive, send)


def _matches(candidate: str, hashes: Sequence[str]) -> bool:
    matched = False
    for known in hashes:  # every hash compared, so the time taken says nothing about which one matched
        matched |= hmac.compare_digest(candidate, known)
    return matched
