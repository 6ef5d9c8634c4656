"""The HTTP bodies and deployment configs, without a cluster: what they accept, refuse, and how they say so."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from ray.serve.schema import DeploymentSchema, ServeDeploySchema

from backbone.errors import BackboneError
from backbone.registry import AppSettings
from backbone.serving.config import GatewayConfig, Limits, RerankerConfig, RetrieverConfig, Scaling, ServingScaling
from backbone.serving.gateway import api
from backbone.serving.openapi import with_limits
from backbone.serving.schemas import EmbeddingRequest, InfoResponse, RerankRequest, SearchRequest
from backbone.serving.serve_config import load_scaling

SHIPPED = Path(__file__).resolve().parents[2] / "serve_configs"


def test_requests_forbid_unknown_fields_and_blank_text() -> None:
    with pytest.raises(ValidationError, match="k\n  Extra inputs are not permitted"):
        SearchRequest.model_validate({"query": "合同", "k": 5})
    with pytest.raises(ValidationError, match="must contain some text"):
        SearchRequest.model_validate({"query": " \n"})
    with pytest.raises(ValidationError, match="text 1 is empty"):
        EmbeddingRequest.model_validate({"input": ["合同", " "]})


def test_the_served_openapi_document_declares_the_limits_and_applications() -> None:
    limits = Limits(max_query_chars=300, max_document_chars=900, max_documents=7, max_inputs=5, max_top_n=12)
    fastapi_document = api.openapi()
    schemas = with_limits(fastapi_document, limits, ["search", "api"])["components"]["schemas"]
    search, rerank = schemas["SearchRequest"]["properties"], schemas["RerankRequest"]["properties"]
    assert (search["query"]["maxLength"], rerank["query"]["maxLength"]) == (300, 300)
    assert search["application"]["enum"] == ["api", "search"]
    assert "default" not in search["application"]  # the model's default 'default' is no application of this release
    assert search["top_n"]["anyOf"][0]["maximum"] == rerank["top_n"]["anyOf"][0]["maximum"] == 12
    assert rerank["documents"]["maxItems"] == 7
    assert rerank["documents"]["items"]["anyOf"][0]["maxLength"] == 900
    assert schemas["RerankDocument"]["properties"]["text"]["maxLength"] == 900
    text, texts = schemas["EmbeddingRequest"]["properties"]["input"]["anyOf"]
    assert (text["maxLength"], texts["maxItems"], texts["items"]["maxLength"]) == (900, 5, 900)
    # A whitespace-only text is invalid by the document too (ECMA-262 pattern, unanchored: some non-space).
    assert text["pattern"] == search["query"]["pattern"] == r"\S"
    # FastAPI's own document is left as it was; an application named 'default' keeps its default.
    assert "enum" not in fastapi_document["components"]["schemas"]["SearchRequest"]["properties"]["application"]
    kept = with_limits(fastapi_document, limits, ["default"])["components"]["schemas"]["SearchRequest"]
    assert kept["properties"]["application"]["default"] == "default"


def test_info_shows_each_applications_weight_and_deadline() -> None:
    component = {"checkpoint": "checkpoint-1", "base_model": "e5", "max_lengths": {"query": 32}, "precision": "fp32"}
    info = InfoResponse(
        release="legal",
        release_version=2,
        retriever=component,
        reranker=component,
        applications={"api": AppSettings(k=20, top_n=5, weight=0.5, rerank_timeout_s=0.8)},
        limits={},
    )
    assert info.model_dump(mode="json")["applications"] == {
        "api": {
            "k": 20,
            "top_n": 5,
            "rerank": True,
            "weight": 0.5,
            "rerank_timeout_s": 0.8,
            "without_reranker": "retriever",
        }
    }


def test_rerank_accepts_cohere_strings_and_objects() -> None:
    request = RerankRequest.model_validate({"query": "合同", "documents": ["甲", {"text": "乙"}]})
    assert request.texts() == ["甲", "乙"]
    assert EmbeddingRequest.model_validate({"input": "合同"}).texts() == ["合同"]


def test_every_field_is_described() -> None:
    import backbone.serving.config as config
    import backbone.serving.schemas as schemas

    models = [
        value
        for module in (schemas, config)
        for value in vars(module).values()
        if isinstance(value, type) and hasattr(value, "model_fields") and value.__module__ == module.__name__
    ]
    undescribed = [f"{model.__name__}.{name}" for model in models for name, field in model.model_fields.items()
                   if not field.description]  # fmt: skip
    assert models and not undescribed


def test_the_shipped_serve_configs_are_found() -> None:
    # Guards the test below: a glob that matches nothing would make it pass with no case at all.
    assert [path.name for path in sorted(SHIPPED.glob("*.yaml"))] == ["legal-search.yaml"]


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.yaml")), ids=lambda path: path.name)
def test_shipped_serve_configs_validate_for_serve_and_for_each_deployment(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    ServeDeploySchema.model_validate(config)
    assert config["http_options"]["host"] == "127.0.0.1"
    user_configs = {d["name"]: d["user_config"] for d in config["applications"][0]["deployments"]}
    RetrieverConfig.model_validate(user_configs["Retriever"])
    RerankerConfig.model_validate(user_configs["Reranker"])
    GatewayConfig.model_validate(user_configs["Gateway"])


def test_scaling_defaults_to_one_replica_and_writes_autoscaling_that_serve_accepts(tmp_path: Path) -> None:
    scaling = load_scaling(SHIPPED / "scaling" / "autoscaling.yaml")
    bounded = {
        "max_ongoing_requests": 32,
        "max_queued_requests": 64,
        "backpressure_config": {"status_code": 503, "retry_after_s": 1.0},
    }
    assert scaling.retriever.deployment_options(scaling.retry_after_s) == {
        "autoscaling_config": {
            "min_replicas": 1,
            "max_replicas": 4,
            "target_ongoing_requests": 2.0,
            "upscale_delay_s": 30.0,
            "downscale_delay_s": 600.0,
        },
        "ray_actor_options": {"num_cpus": 0.5, "num_gpus": 0.0},
        **bounded,
    }
    fixed = scaling.reranker.deployment_options(1.0)["autoscaling_config"]
    assert (fixed["min_replicas"], fixed["max_replicas"]) == (2, 2)
    default = ServingScaling().retriever.deployment_options(1.0)
    assert (default["autoscaling_config"]["min_replicas"], default["autoscaling_config"]["max_replicas"]) == (1, 1)
    assert default["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 0.0}
    gateway = ServingScaling(retry_after_s=2.5).gateway.deployment_options(2.5)
    assert gateway == {**bounded, "max_ongoing_requests": 64, "backpressure_config": {**bounded["backpressure_config"],
                       "retry_after_s": 2.5}}  # fmt: skip
    for name, options in (
        ("Retriever", scaling.retriever.deployment_options(1.0)),
        ("Reranker", Scaling(num_gpus=0.25).deployment_options(1.0)),
        ("Gateway", gateway),
    ):
        DeploymentSchema.model_validate({"name": name, **options})

    bad = tmp_path / "scaling.yaml"
    bad.write_text("retriever:\n  autoscaling: {min_replicas: 3, max_replicas: 2}\nreranker: {replica: 2}\n")
    with pytest.raises(BackboneError) as refused:
        load_scaling(bad)
    message = str(refused.value)
    assert message.startswith(f"{bad}: ") and "min_replicas 3 is above max_replicas 2" in message
    assert "reranker.replica: Extra inputs are not permitted" in message


def test_replicas_given_threads_sleep_their_idle_threads_and_others_keep_their_environment() -> None:
    threaded = Scaling(threads=2).deployment_options(1.0)
    assert threaded["ray_actor_options"] == {
        "num_cpus": 0.5,
        "num_gpus": 0,
        "runtime_env": {"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}},
    }
    DeploymentSchema.model_validate({"name": "Reranker", **threaded})
    assert "runtime_env" not in Scaling().deployment_options(1.0)["ray_actor_options"]
