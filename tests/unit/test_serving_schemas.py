"""The HTTP bodies and deployment configs, without a cluster: what they accept, refuse, and how they say so."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from ray.serve.schema import ServeDeploySchema

from backbone.serving.config import GatewayConfig, RerankerConfig, RetrieverConfig
from backbone.serving.schemas import EmbeddingRequest, RerankRequest, SearchRequest

SHIPPED = Path(__file__).resolve().parents[2] / "serve_configs"


def test_requests_forbid_unknown_fields_and_blank_text() -> None:
    with pytest.raises(ValidationError, match="k\n  Extra inputs are not permitted"):
        SearchRequest.model_validate({"query": "合同", "k": 5})
    with pytest.raises(ValidationError, match="must contain some text"):
        SearchRequest.model_validate({"query": " \n"})
    with pytest.raises(ValidationError, match="text 1 is empty"):
        EmbeddingRequest.model_validate({"input": ["合同", " "]})


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


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.yaml")), ids=lambda path: path.name)
def test_shipped_serve_configs_validate_for_serve_and_for_each_deployment(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    ServeDeploySchema.model_validate(config)
    assert config["http_options"]["host"] == "127.0.0.1"
    user_configs = {d["name"]: d["user_config"] for d in config["applications"][0]["deployments"]}
    RetrieverConfig.model_validate(user_configs["Retriever"])
    RerankerConfig.model_validate(user_configs["Reranker"])
    GatewayConfig.model_validate(user_configs["Gateway"])
