"""The served OpenAPI document, with the deployment's own limits and applications written into the request schemas.

The request models (``schemas.py``) hold the bounds every deployment shares; the :class:`Limits` and the release's
applications are known only once the gateway has its config. Declaring them in the document the gateway serves
means that a request the document calls valid is one the gateway accepts (a client generator, or schemathesis'
``positive_data_acceptance``, can rely on it). The one limit no JSON schema can state is ``max_body_bytes``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from backbone.serving.config import Limits

# JSON Schema (ECMA-262) for "holds some text, not only whitespace", the rule schemas._not_blank enforces.
_NOT_BLANK = r"\S"


def with_limits(document: dict[str, Any], limits: Limits, applications: Iterable[str]) -> dict[str, Any]:
    """A copy of the OpenAPI ``document`` whose request schemas declare ``limits`` and the known ``applications``.

    Args:
        document: FastAPI's OpenAPI document of the gateway (left unchanged).
        limits: the gateway's request limits.
        applications: the names of the release's applications (none: no enum is declared).

    Example:
        >>> from backbone.serving.gateway import api
        >>> served = with_limits(api.openapi(), Limits(max_query_chars=500), ["api", "search"])
        >>> served["components"]["schemas"]["SearchRequest"]["properties"]["query"]["maxLength"]
        500
    """
    declared = copy.deepcopy(document)
    schemas = declared["components"]["schemas"]

    search = schemas["SearchRequest"]["properties"]
    search["query"].update(maxLength=limits.max_query_chars, pattern=_NOT_BLANK)
    names = sorted(applications)
    if names:  # none before the gateway's first config, when every route but /healthz is a 503
        search["application"]["enum"] = names
        if search["application"].get("default") not in names:  # the model's default names no application here
            search["application"].pop("default", None)
    _bound_integer(search["top_n"], limits.max_top_n)

    rerank = schemas["RerankRequest"]["properties"]
    rerank["query"].update(maxLength=limits.max_query_chars, pattern=_NOT_BLANK)
    rerank["documents"]["maxItems"] = limits.max_documents
    for choice in rerank["documents"]["items"]["anyOf"]:
        if choice.get("type") == "string":
            choice["maxLength"] = limits.max_document_chars
    schemas["RerankDocument"]["properties"]["text"]["maxLength"] = limits.max_document_chars
    _bound_integer(rerank["top_n"], limits.max_top_n)

    for choice in schemas["EmbeddingRequest"]["properties"]["input"]["anyOf"]:
        text = choice if choice.get("type") == "string" else choice["items"]
        text.update(maxLength=limits.max_document_chars, pattern=_NOT_BLANK)
        if choice.get("type") == "array":
            choice.update(minItems=1, maxItems=limits.max_inputs)
    return declared


def _bound_integer(field: dict[str, Any], maximum: int) -> None:
    """Set ``maximum`` on the integer branch of an optional integer field (``anyOf: [integer, null]``)."""
    for choice in field["anyOf"]:
        if choice.get("type") == "integer":
            choice["maximum"] = maximum
