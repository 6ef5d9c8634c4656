"""The gateway's Prometheus metrics, answered at ``GET /metrics`` in prometheus_client's text format.

What an operator watches: requests by route, application and status; the latency of each request and of each
component call as the gateway waits for it; searches answered without the reranking their application asks for,
by reason; and the release version served. Batch sizes and queue depths are the replicas' own: Ray Serve exports
them on each node's metrics port (``ray_serve_batch_utilization_percent``, ``ray_serve_deployment_queued_queries``
and the others in Ray's Serve monitoring guide).

One gateway replica serves (see :mod:`backbone.serving.serve_config`), so its registry holds every request's figures.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ROUTES = frozenset(
    {
        "/v1/search",
        "/v1/embeddings",
        "/v1/rerank",
        "/v1/info",
        "/healthz",
        "/readyz",
        "/metrics",
        "/docs",
        "/openapi.json",
    }
)
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    """The gateway's counters and histograms, in a registry of their own.

    Example:
        >>> metrics = GatewayMetrics()
        >>> metrics.degraded.labels(application="search", reason="timeout").inc()
        >>> b"backbone_degraded_answers_total" in metrics.exposition()[0]
        True
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "backbone_requests",
            "HTTP requests answered, by route, application (searches only) and status code.",
            ["route", "application", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "backbone_request_seconds", "Time to answer a request, by route.", ["route"], buckets=_SECONDS,
            registry=self.registry,
        )  # fmt: skip
        self.component_seconds = Histogram(
            "backbone_component_seconds",
            "Time the gateway waited for a component, by component, call (search, embed, score, info) and outcome "
            "(ok, timeout, failed, busy: its queue was full).",
            ["component", "call", "outcome"],
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.degraded = Counter(
            "backbone_degraded_answers",
            "Searches answered in the retriever's order although their application reranks, by reason "
            "(timeout: the reranker missed its deadline; failed: it raised; busy: its queue was full).",
            ["application", "reason"],
            registry=self.registry,
        )
        self.release_version = Gauge(
            "backbone_release_version", "The release version the gateway serves, by release.", ["release"],
            registry=self.registry,
        )  # fmt: skip

    def exposition(self) -> tuple[bytes, str]:
        """The text a scrape gets, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class CountRequests:
    """ASGI middleware counting every answer (401, 413 and 422 included) and timing it, by route.

    A path that is not a route counts as ``other`` (no label per unknown URL). A search names its application by
    setting ``request.state.application``.

    Args:
        app: the application to measure.
        metrics: where the figures go.

    Example:
        >>> api.add_middleware(CountRequests, metrics=GatewayMetrics())  # doctest: +SKIP
    """

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in ROUTES else "other"
        state = scope.setdefault("state", {})
        status = 500  # an exception that escapes every handler
        started = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            application = str(state.get("application", ""))
            self.metrics.requests.labels(route=route, application=application, status=str(status)).inc()
            self.metrics.request_seconds.labels(route=route).observe(time.perf_counter() - started)
