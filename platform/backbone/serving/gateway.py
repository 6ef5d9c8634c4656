"""The HTTP gateway: a FastAPI ingress that calls the retriever and the reranker through deployment handles.

Routes: ``POST /v1/search``, ``POST /v1/embeddings`` (OpenAI), ``POST /v1/rerank`` (Cohere), ``GET /v1/info``,
``GET /healthz`` (liveness), ``GET /readyz`` (both components answering), ``GET /metrics`` (Prometheus), and the
OpenAPI document at ``/docs``.
There is no route that deploys or rolls back: those are CLI and registry actions (``backbone deploy``,
``backbone rollback``).

No ``from __future__ import annotations`` here: ``serve.ingress`` re-wraps the routes, and FastAPI must see the
request models as classes, not strings, or it reads them as query parameters.
"""

import asyncio
import base64
import logging
import math
import time
import uuid
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request, Response
from ray import serve
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator

from backbone.serving.auth import ApiKeys
from backbone.serving.config import GatewayConfig, Limits
from backbone.serving.http_errors import BodySizeLimit, RequestId, install_error_handlers, request_id
from backbone.serving.metrics import CountRequests, GatewayMetrics
from backbone.serving.openapi import with_limits
from backbone.serving.schemas import (
    ComponentInfo,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorResponse,
    InfoResponse,
    ReadyResponse,
    RerankDocument,
    RerankRequest,
    RerankResponse,
    RerankResult,
    SearchRequest,
    SearchResponse,
    Usage,
    Versions,
)
from backbone.serving.search_steps import ranked_hits

_REFUSALS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Malformed JSON.",
        401: "No API key, or a wrong one, when the gateway asks for keys (Authorization: Bearer KEY).",
        404: "Unknown application.",
        413: "Request body over the size limit.",
        422: "A field is missing, of the wrong type, or over a limit; the error names it.",
        503: "A component failed, missed its deadline or is busy (a full queue: the answer has Retry-After).",
    }.items()
}

api = FastAPI(
    title="backbone",
    summary="A shared legal retrieval backbone: dense retrieval, reranking, embeddings.",
    description="See docs/serving.md for the truncation policy, limits, deploy and rollback.",
    version="1",
)
install_error_handlers(api)
# Limits and keys are read per request so that a reconfigured gateway applies its new ones; before any config, the
# defaults (no key asked: until then every route but /healthz answers 503).
_current_limits: list[Limits] = [Limits()]
_current_key_hashes: list[list[str]] = [[]]
_current_applications: list[list[str]] = [[]]
_fastapi_openapi = api.openapi
# /openapi.json: FastAPI's document with the limits and applications of the config in force (openapi.py). A lambda,
# as the middlewares' readers above: Serve ships the ingress app and this module's lambdas to the replica by value,
# with one copy of the _current_* lists that reconfigure() writes; a module-level def would travel by reference and
# read the replica's own lists, which nothing writes.
api.openapi = lambda: with_limits(_fastapi_openapi(), _current_limits[0], _current_applications[0])  # type: ignore[method-assign]
api.add_middleware(BodySizeLimit, limit=lambda: _current_limits[0].max_body_bytes)
api.add_middleware(ApiKeys, hashes=lambda: _current_key_hashes[0])  # before the body is read
metrics = GatewayMetrics()
api.add_middleware(CountRequests, metrics=metrics)  # every answer counted, a 401 or 413 included
api.add_middleware(RequestId)  # outermost: every answer, a 401 or 413 included, carries the request's id
logger = logging.getLogger("ray.serve")


class ComponentUnavailable(HTTPException):
    """A 503: a component failed, missed its deadline or had a full queue (``reason``: failed, timeout, busy).

    ``retry_after_s``: busy only, the ``Retry-After`` the answer carries (the component's backpressure_config).
    """

    def __init__(self, reason: str, message: str, retry_after_s: float | None = None) -> None:
        headers = {"Retry-After": str(math.ceil(retry_after_s))} if retry_after_s is not None else None
        super().__init__(503, message, headers=headers)
        self.reason = reason


def _refuse_over(value: int, limit: int, what: str) -> None:
    if value > limit:
        raise HTTPException(422, f"{what}: {value} is over the limit of {limit}")


def _encoded(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return vector.tolist()


@serve.deployment(name="Gateway", ray_actor_options={"num_cpus": 0})
@serve.ingress(api)
class Gateway:
    """The ingress; its ``user_config`` is a :class:`GatewayConfig` (release, applications, deadlines, limits).

    Args:
        retriever: handle of the Retriever deployment.
        reranker: handle of the Reranker deployment.
    """

    def __init__(self, retriever: DeploymentHandle, reranker: DeploymentHandle) -> None:
        self._retriever = retriever
        self._reranker = reranker
        self._config: GatewayConfig | None = None

    def reconfigure(self, user_config: dict) -> None:
        """Take a new release version, applications, deadlines, limits or API keys; the components are not touched."""
        self._config = GatewayConfig.model_validate(user_config)
        _current_limits[0] = self._config.limits
        _current_key_hashes[0] = list(self._config.api_key_hashes)
        _current_applications[0] = list(self._config.applications)
        metrics.release_version.clear()
        metrics.release_version.labels(release=self._config.release).set(self._config.release_version)

    @property
    def config(self) -> GatewayConfig:
        if self._config is None:
            raise HTTPException(503, "the gateway has no user_config yet: deploy it with `backbone deploy`")
        return self._config

    async def _call(
        self, response: DeploymentResponse | DeploymentResponseGenerator, timeout: float, component: str, call: str
    ) -> Any:
        """Await a component's answer; a failure, a missed deadline or a full queue is a 503 naming the component.

        A call past its deadline is cancelled, so the component does not go on working for an answer nobody
        waits for. A failure's detail (for a Ray task error, a remote traceback with hosts, pids and paths) goes
        to the gateway's log under the request's id, never into the answer.
        """
        assert not isinstance(response, DeploymentResponseGenerator), "the components answer once; none streams"
        started, outcome = time.perf_counter(), "ok"
        try:
            return await asyncio.wait_for(response, timeout)
        except TimeoutError:
            outcome = "timeout"
            response.cancel()
            raise ComponentUnavailable(outcome, f"{component}: no answer within {timeout} s") from None
        except BackPressureError as err:  # refused at once: the component's queue is full
            outcome = "busy"
            message = f"{component}: busy (its queue is full); retry later"
            raise ComponentUnavailable(outcome, message, err.retry_after_s) from None
        except Exception as err:  # any failure inside the component: log it, keep the gateway serving
            outcome = "failed"
            logger.error("request %s: %s failed: %s: %s", request_id(), component, type(err).__name__, err)
            message = f"{component} failed (request {request_id()}; the detail is logged)"
            raise ComponentUnavailable(outcome, message) from None
        finally:
            metrics.component_seconds.labels(component=component, call=call, outcome=outcome).observe(
                time.perf_counter() - started
            )

    async def _components_info(self, config: GatewayConfig) -> tuple[dict, dict]:
        """Both components' ``info()``, asked together; a failure or a missed deadline is a 503 naming the component."""
        retriever, reranker = await asyncio.gather(
            self._call(self._retriever.info.remote(), config.retrieve_timeout_s, "retriever", "info"),
            # Not the rerank deadline: that one is sized for a search, and may be tight on purpose.
            self._call(self._reranker.info.remote(), config.retrieve_timeout_s, "reranker", "info"),
        )
        return retriever, reranker

    @api.post("/v1/search", response_model=SearchResponse, responses=_REFUSALS)
    async def search(self, request: SearchRequest, http: Request) -> SearchResponse:
        """Retrieve, then rerank if the application does (at its interpolation weight); answer the best ``top_n``."""
        config = self.config
        settings = config.applications.get(request.application)
        if settings is None:
            known = ", ".join(sorted(config.applications))
            raise HTTPException(404, f"application: unknown {request.application!r}; known applications: {known}")
        http.state.application = request.application  # a known name only: the metrics' label values stay few
        _refuse_over(len(request.query), config.limits.max_query_chars, "query characters")
        _refuse_over(request.top_n or 0, config.limits.max_top_n, "top_n")
        top_n = min(request.top_n or settings.top_n, settings.k)  # no more results than candidates
        candidates, retriever, index = await self._call(
            self._retriever.search.remote(request.query, settings.k), config.retrieve_timeout_s, "retriever", "search"
        )
        scores, reranker, error = None, None, None
        if settings.calls_reranker and candidates:
            try:
                scores, reranker = await self._call(
                    self._reranker.score.remote(request.query, [(c.title, c.text) for c in candidates]),
                    settings.rerank_timeout_s or config.rerank_timeout_s,
                    "reranker",
                    "score",
                )
            except ComponentUnavailable as failed:
                if settings.without_reranker == "unavailable":
                    raise
                error = failed.detail
                metrics.degraded.labels(application=request.application, reason=failed.reason).inc()
        return SearchResponse(
            release=config.release,
            application=request.application,
            reranked=scores is not None,
            rerank_error=error,
            versions=Versions(retriever=retriever, index=index, reranker=reranker),
            results=ranked_hits(candidates, scores, top_n, settings.weight),
        )

    @api.post("/v1/embeddings", response_model=EmbeddingResponse, responses=_REFUSALS)
    async def embeddings(self, request: EmbeddingRequest, response: Response) -> EmbeddingResponse:
        """OpenAI-compatible embeddings from the retriever (queries by default; ``input_type`` for passages)."""
        limits = self.config.limits
        texts = request.texts()
        _refuse_over(len(texts), limits.max_inputs, "input texts")
        for position, text in enumerate(texts):
            _refuse_over(len(text), limits.max_document_chars, f"input.{position} characters")
        vectors, tokens, checkpoint = await self._call(
            self._retriever.embed.remote(texts, request.input_type),
            self.config.retrieve_timeout_s,
            "retriever",
            "embed",
        )
        response.headers["X-Backbone-Retriever"] = checkpoint
        return EmbeddingResponse(
            data=[
                Embedding(index=position, embedding=_encoded(vector, request.encoding_format))
                for position, vector in enumerate(vectors)
            ],
            model=checkpoint,
            usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
        )

    @api.post("/v1/rerank", response_model=RerankResponse, responses=_REFUSALS, response_model_exclude_none=True)
    async def rerank(self, request: RerankRequest, response: Response) -> RerankResponse:
        """Cohere-compatible rerank: the documents by relevance to the query, with sigmoid scores."""
        limits = self.config.limits
        texts = request.texts()
        _refuse_over(len(request.query), limits.max_query_chars, "query characters")
        _refuse_over(len(texts), limits.max_documents, "documents")
        for position, text in enumerate(texts):
            _refuse_over(len(text), limits.max_document_chars, f"documents.{position} characters")
        _refuse_over(request.top_n or 0, limits.max_top_n, "top_n")
        top_n = min(request.top_n or len(texts), len(texts))  # as Cohere's: at most every document
        scores, checkpoint = await self._call(
            self._reranker.score_documents.remote(request.query, texts),
            self.config.rerank_endpoint_timeout_s,
            "reranker",
            "rerank",
        )
        response.headers["X-Backbone-Reranker"] = checkpoint
        order = np.argsort(-scores, kind="stable")[:top_n]
        relevance = 1 / (1 + np.exp(-scores.astype(np.float64)))
        return RerankResponse(
            id=str(uuid.uuid4()),
            model=checkpoint,
            results=[
                RerankResult(
                    index=int(position),
                    relevance_score=float(relevance[position]),
                    document=RerankDocument(text=texts[position]) if request.return_documents else None,
                )
                for position in order
            ],
        )

    @api.get("/v1/info", response_model=InfoResponse, responses=_REFUSALS)
    async def info(self) -> InfoResponse:
        """The release, each component's version, model and max input lengths, the applications and limits."""
        config = self.config
        retriever, reranker = await self._components_info(config)
        return InfoResponse(
            release=config.release,
            release_version=config.release_version,
            retriever=ComponentInfo(**retriever),
            reranker=ComponentInfo(**reranker),
            applications=dict(config.applications),
            limits=config.limits.model_dump(),
        )

    @api.get("/metrics", include_in_schema=False)
    async def prometheus(self) -> Response:
        """Prometheus metrics (text format): requests, latencies, degraded answers, the release version served."""
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str | None]:
        """Liveness: ``{"status": "ok"}`` while the gateway answers, with its release (null before a config)."""
        return {"status": "ok", "release": self._config.release if self._config else None}

    @api.get("/readyz", response_model=ReadyResponse, responses=_REFUSALS)
    async def readyz(self) -> ReadyResponse:
        """Readiness: both components loaded and answering within the retrieval deadline; else a 503 naming one."""
        config = self.config
        retriever, reranker = await self._components_info(config)
        versions = Versions(
            retriever=retriever["checkpoint"], index=retriever["index"], reranker=reranker["checkpoint"]
        )
        return ReadyResponse(status="ready", release=config.release, versions=versions)
