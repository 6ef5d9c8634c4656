"""What each deployment is told to serve: the ``user_config`` of the retriever, the reranker and the gateway.

Each component's artifacts live in its own deployment's ``user_config``, so changing one component (a promotion or a
rollback) changes only that deployment's config: Ray Serve then calls ``reconfigure()`` on its replicas alone and
leaves every other deployment's replicas running (same processes).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backbone.recipes import Inference
from backbone.registry import AppSettings
from backbone.serving.auth import is_api_key_hash


class Batching(BaseModel):
    """How a deployment groups concurrent requests into one forward pass (``@serve.batch``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(16, ge=1, le=512, description="Most requests run through the model together.")
    batch_wait_timeout_s: float = Field(
        0.005,
        ge=0,
        le=1,
        description="How long a batch waits for more requests once its first one has arrived while the model is "
        "idle, if the last pass had company (several requests, or requests arriving while it ran); after a lone "
        "pass a lone request runs at once. While a pass runs, the next batch waits until that pass is expected to "
        "end (its work at the last pass's seconds per text, document or query), so that the requests arriving "
        "during it run together.",
    )


DEFAULT_BATCHING = Batching()
"""The batching a deployment starts with, before ``reconfigure()`` applies its config's ``batching``."""


class ComponentConfig(BaseModel):
    """What the retriever's and the reranker's ``user_config`` share: the checkpoint and how its passes run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registry: str = Field(description="URI of the registry holding the checkpoint (and the retriever's index).")
    checkpoint: str = Field(description="Id of the component's checkpoint artifact.")
    threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Torch threads of each replica's model passes; None: what Ray gives a replica of its num_cpus "
        "(one thread for a fractional CPU).",
    )
    inference: Inference | None = Field(
        None,
        description="Precision and token budget of this deployment's model passes; None (the default): the "
        "checkpoint's own, which the stage search measured.",
    )


class RetrieverConfig(ComponentConfig):
    """The retriever deployment's ``user_config``: the checkpoint, its index, and the documents the index holds.

    Example:
        >>> RetrieverConfig(registry="/reg", checkpoint="checkpoint-20250301T120000Z-0a1b2c3d",
        ...     index="index-20250301T120500Z-1a2b3c4d").batching.max_batch_size
        16
    """

    index: str = Field(description="Id of the index artifact built from that checkpoint.")
    documents: str | None = Field(
        None,
        description="None (the default): each id's title and text come from the index artifact itself "
        "(documents.parquet), so a replica needs only the registry. Else a prepared dataset folder on every "
        "replica's node (backbone.data.load_dataset), which must be the dataset the index was built on.",
    )
    batching: Batching = Field(default_factory=Batching, description="Dynamic batching of queries and embeddings.")


class RerankerConfig(ComponentConfig):
    """The reranker deployment's ``user_config``.

    Example:
        >>> RerankerConfig(registry="/reg", checkpoint="checkpoint-20250301T120000Z-0a1b2c3d").batching.max_batch_size
        16
    """

    batching: Batching = Field(default_factory=Batching, description="Dynamic batching of rerank requests.")


class Limits(BaseModel):
    """What the gateway accepts; anything beyond is a 4xx answer naming the part of the request at fault."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body, in bytes (413 beyond).")
    max_query_chars: int = Field(2_000, ge=1, description="Longest query, in characters.")
    max_document_chars: int = Field(20_000, ge=1, description="Longest document to rerank or text to embed.")
    max_documents: int = Field(256, ge=1, description="Most documents in one rerank request.")
    max_inputs: int = Field(256, ge=1, description="Most texts in one embeddings request.")
    max_top_n: int = Field(100, ge=1, description="Most results one search or rerank answer may ask for.")


class GatewayConfig(BaseModel):
    """The gateway deployment's ``user_config``: which release serves, its applications, deadlines and limits.

    Example:
        >>> GatewayConfig(release="legal-search", release_version=3,
        ...     applications={"default": AppSettings(k=50, top_n=10)}).rerank_timeout_s
        2.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    release: str = Field(description="Name of the release being served.")
    release_version: int = Field(ge=1, description="Version of the release whose components are being served.")
    applications: dict[str, AppSettings] = Field(
        min_length=1, description="Settings (k, top_n, rerank, weight) of each application, by name, from the release."
    )
    rerank_timeout_s: float = Field(
        2.0, gt=0, le=60, description="Deadline of the reranker per search; past it the retriever's ranking answers."
    )
    rerank_endpoint_timeout_s: float = Field(
        10.0,
        gt=0,
        le=120,
        description="Deadline of a /v1/rerank request (up to max_documents pairs, more than a search reranks); "
        "past it the answer is a 503. Apart from rerank_timeout_s, so that a tight search deadline does not fail "
        "rerank requests.",
    )
    retrieve_timeout_s: float = Field(
        10.0,
        gt=0,
        le=120,
        description="Deadline of the retriever (and of /v1/info) per request; past it the answer is a 503.",
    )
    limits: Limits = Field(default_factory=Limits, description="Request size limits.")
    api_key_hashes: list[str] = Field(
        default_factory=list,
        description="SHA-256 hashes ('sha256:<hex>', backbone.serving.auth.hash_api_key) of the keys a request may "
        "send as 'Authorization: Bearer KEY'; every route but /healthz then asks for one. Empty: no key asked.",
    )

    @field_validator("api_key_hashes")
    @classmethod
    def _hashes_not_keys(cls, hashes: list[str]) -> list[str]:
        for position, value in enumerate(hashes):
            if not is_api_key_hash(value):
                raise ValueError(f"item {position} is not 'sha256:' and 64 hex digits: store keys hashed, never raw")
        return hashes


class Autoscaling(BaseModel):
    """Ray Serve's ``autoscaling_config`` for one deployment: replicas follow the requests in flight.

    Example:
        >>> Autoscaling(max_replicas=4).serve_config()["target_ongoing_requests"]
        2.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_replicas: int = Field(
        1, ge=0, description="Fewest replicas; 0 lets an idle deployment go away (the next request waits for a load)."
    )
    max_replicas: int = Field(ge=1, description="Most replicas; each holds its own copy of the model.")
    target_ongoing_requests: float = Field(
        2.0, gt=0, description="Requests in flight per replica that Serve aims at: more adds replicas, fewer removes."
    )
    upscale_delay_s: float = Field(
        30.0, ge=0, description="How long the load must stay above the target before replicas are added."
    )
    downscale_delay_s: float = Field(
        600.0, ge=0, description="How long the load must stay below the target before replicas are removed."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} is above max_replicas {self.max_replicas}")
        return self

    def serve_config(self) -> dict[str, float | int]:
        """The deployment's ``autoscaling_config`` in a Serve config file."""
        return self.model_dump(mode="json")


class QueueBounds(BaseModel):
    """How many requests a deployment's replica works on at once, and how many may wait for one.

    A request that finds the wait full is refused at once (Serve's ``max_queued_requests``): 503 with Retry-After.

    Example:
        >>> QueueBounds().deployment_options(1.0)["max_ongoing_requests"]
        32
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_ongoing_requests: int = Field(
        32,
        ge=1,
        description="Requests one replica works on at once. For the retriever and the reranker keep it at least "
        "their batching max_batch_size (16), or batches never fill; Serve's own default is 5.",
    )
    max_queued_requests: int = Field(
        64,
        ge=1,
        description="Requests that may wait for a replica; one more is refused at once: a search then answers "
        "degraded ('reranker: busy'), other calls a 503 with Retry-After.",
    )

    def deployment_options(self, retry_after_s: float) -> dict[str, object]:
        """The bounds in a Serve config deployment, with the ``Retry-After`` of a refusal."""
        return {
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "backpressure_config": {"status_code": 503, "retry_after_s": retry_after_s},
        }


THREADED_REPLICA_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
"""The environment of a replica given ``threads``: its OpenMP threads sleep when idle instead of spinning.

Where the retriever's and the reranker's replicas share a node's cores, spinning threads of one replica take the
cores the other computes on; measured on 2 cores with 2 threads a replica, 8 clients: 7.8 searches/s spinning,
14.1 passive (docs/benchmarks.md).
"""


class Scaling(BaseModel):
    """How many replicas of one deployment run, and what each asks of a node.

    Without ``autoscaling`` the deployment runs ``replicas`` replicas, whatever the load.

    Example:
        >>> Scaling(num_gpus=0.25).deployment_options()["ray_actor_options"]
        {'num_cpus': 0.5, 'num_gpus': 0.25}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    replicas: int = Field(1, ge=1, description="Fixed number of replicas, used when autoscaling is not set.")
    autoscaling: Autoscaling | None = Field(
        None, description="Replicas follow the load between min_replicas and max_replicas instead (replaces replicas)."
    )
    num_cpus: float = Field(0.5, ge=0, description="CPUs each replica reserves on its node.")
    num_gpus: float = Field(
        0, ge=0, description="GPUs each replica reserves: a fraction (0.25) shares one GPU among replicas; 0 on CPU."
    )
    queues: QueueBounds = Field(
        default_factory=QueueBounds, description="Requests a replica takes at once, and how many may wait for one."
    )
    threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Torch threads of each replica's model passes. None (the default): Ray's, one thread for a "
        "fractional num_cpus. As many as the node's cores cuts a lone request's latency where the retriever and the "
        "reranker share a node (a search runs one, then the other); under load they then share the cores, their "
        "idle threads sleeping (OMP_WAIT_POLICY=PASSIVE) rather than spinning. Setting or clearing it replaces the "
        "deployment's replicas (their environment changes); changing its value only reconfigures them.",
    )
    inference: Inference | None = Field(
        None,
        description="Precision and token budget of the replicas' model passes (e.g. precision: auto on nodes "
        "whose CPUs multiply bf16 natively); None (the default): the checkpoint's own, which the search measured.",
    )
    batching: Batching = Field(
        default_factory=Batching, description="How each replica groups concurrent requests into one model pass."
    )

    def deployment_options(self, retry_after_s: float) -> dict[str, object]:
        """The replicas, resources and queue bounds of a Serve config deployment.

        A fixed count is written as an autoscaling range of one value, never as ``num_replicas``: Serve hashes which
        deployments carry an ``autoscaling_config`` into the application's code version, so switching between the
        two forms would restart every replica of every deployment instead of only resizing one.

        Args:
            retry_after_s: the ``Retry-After`` of a request refused because this deployment's queue is full.
        """
        autoscaling = self.autoscaling or Autoscaling(min_replicas=self.replicas, max_replicas=self.replicas)
        actor: dict[str, object] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.threads is not None:
            actor["runtime_env"] = {"env_vars": THREADED_REPLICA_ENV}
        return {
            "autoscaling_config": autoscaling.serve_config(),
            "ray_actor_options": actor,
            **self.queues.deployment_options(retry_after_s),
        }


class Ingress(BaseModel):
    """What the gateway (the HTTP ingress, one replica) takes in before Serve's proxy refuses requests.

    Example:
        >>> Ingress().deployment_options(1.0)["backpressure_config"]
        {'status_code': 503, 'retry_after_s': 1.0}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    queues: QueueBounds = Field(
        default_factory=lambda: QueueBounds(max_ongoing_requests=64),
        description="Requests the gateway handles at once (each mostly waits on a component), and how many may "
        "wait; one more is answered 503 with Retry-After by Serve's proxy before any work is done for it.",
    )
    request_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Most time a request may take from its arrival at Serve's proxy, queueing included; past it "
        "the proxy answers 408 and cancels the request's work (Serve's http_options.request_timeout_s).",
    )

    def deployment_options(self, retry_after_s: float) -> dict[str, object]:
        """The gateway deployment's queue bounds in a Serve config."""
        return self.queues.deployment_options(retry_after_s)


class ServingScaling(BaseModel):
    """Replicas, resources and queue bounds of the deployments (``backbone deploy --scaling FILE``).

    The gateway stays one replica with no CPU reserved: it only forwards requests. Every queue is bounded: a
    request that finds one full is refused at once with a 503 and ``Retry-After``, never left waiting.

    Example:
        >>> ServingScaling.model_validate({"retriever": {"autoscaling": {"max_replicas": 3}}}).reranker.replicas
        1
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    retriever: Scaling = Field(default_factory=Scaling, description="Replicas and resources of the retriever.")
    reranker: Scaling = Field(default_factory=Scaling, description="Replicas and resources of the reranker.")
    gateway: Ingress = Field(default_factory=Ingress, description="Queue bounds and request timeout of the gateway.")
    retry_after_s: float = Field(
        1.0, gt=0, le=600, description="The Retry-After (seconds, rounded up) of a request refused for a full queue."
    )
