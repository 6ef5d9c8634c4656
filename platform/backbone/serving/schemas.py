"""The HTTP API's request and response bodies.

``/v1/embeddings`` follows OpenAI's embeddings API and ``/v1/rerank`` Cohere's rerank API, so their clients work
unchanged; ``/v1/search`` is backbone's own. Every request model forbids unknown fields, so a misspelt field is a
422 that names it rather than a silently ignored option. Size limits that depend on the deployment's
:class:`~backbone.serving.config.Limits` are checked by the gateway and written into the OpenAPI document it serves
(``openapi.py``); the bounds here hold for every deployment.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backbone.registry import AppSettings

# A sanity bound before any configured limit: a text longer than this is refused whatever the deployment allows.
_HARD_TEXT_CHARS = 1_000_000


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain some text, not only whitespace")
    return value


class Versions(BaseModel):
    """The artifacts that produced an answer."""

    model_config = ConfigDict(extra="forbid")

    retriever: str | None = Field(None, description="Id of the retriever checkpoint that encoded the query.")
    index: str | None = Field(None, description="Id of the index artifact that was searched.")
    reranker: str | None = Field(None, description="Id of the reranker checkpoint that scored, if one did.")


class SearchRequest(BaseModel):
    """A search of one application's documents."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"query": "谁可以成为个体工商户？", "application": "default", "top_n": 5}]},
    )

    query: str = Field(min_length=1, max_length=_HARD_TEXT_CHARS, description="The question, in plain text.")
    application: str = Field("default", min_length=1, description="The application whose settings apply.")
    top_n: int | None = Field(
        None,
        ge=1,
        description="Results wanted; default the application's top_n. More than the application's k (its "
        "candidates) answers k.",
    )

    _query_not_blank = field_validator("query")(_not_blank)


class SearchHit(BaseModel):
    """One ranked document."""

    model_config = ConfigDict(extra="forbid")

    rank: int = Field(ge=1, description="Position in the answer, 1 for the best.")
    doc_id: str = Field(description="The document's id in the corpus.")
    title: str = Field(description="The document's title (may be empty).")
    text: str = Field(description="The document's text.")
    score: float = Field(
        description="What ordered the results: when reranked, the application's interpolation of the reranker's "
        "and the retriever's min-max normalised scores (in [0, 1]); else the retriever's cosine similarity."
    )
    retriever_score: float = Field(description="The retriever's cosine similarity of query and document.")
    reranker_score: float | None = Field(None, description="The reranker's logit, when it scored the document.")


class SearchResponse(BaseModel):
    """The ranked documents and what produced them."""

    model_config = ConfigDict(extra="forbid")

    release: str = Field(description="The release serving.")
    application: str = Field(description="The application whose settings applied.")
    reranked: bool = Field(description="Whether the reranker ordered the results (false: the retriever's order).")
    rerank_error: str | None = Field(None, description="Why the reranker did not, when the application reranks.")
    versions: Versions = Field(description="The retriever, index and reranker that produced these results.")
    results: list[SearchHit] = Field(description="The documents, best first.")


class EmbeddingRequest(BaseModel):
    """OpenAI-compatible embeddings request (``input_type`` is backbone's addition)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"input": ["谁可以成为个体工商户？"], "model": "backbone-retriever"}]},
    )

    input: str | list[str] = Field(description="A text or a list of texts to embed.")
    model: str | None = Field(None, description="Accepted for compatibility; the release's retriever embeds.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="'float': lists of numbers; 'base64': little-endian float32 bytes, base64-encoded."
    )
    input_type: Literal["query", "passage"] = Field(
        "query", description="Read the texts as queries or as passages (each side has its prompt and max length)."
    )
    user: str | None = Field(None, description="Accepted for compatibility; ignored.")

    @field_validator("input")
    @classmethod
    def _texts_present(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts:
            raise ValueError("must hold at least one text")
        for position, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"text {position} is empty")
            if len(text) > _HARD_TEXT_CHARS:
                raise ValueError(f"text {position} has {len(text)} characters, more than {_HARD_TEXT_CHARS}")
        return value

    def texts(self) -> list[str]:
        """The inputs as a list."""
        return [self.input] if isinstance(self.input, str) else list(self.input)


class Embedding(BaseModel):
    """One input's embedding."""

    model_config = ConfigDict(extra="forbid")

    object: Literal["embedding"] = Field("embedding", description="Always 'embedding'.")
    index: int = Field(ge=0, description="Position of the input it embeds.")
    embedding: list[float] | str = Field(description="Unit-length vector, or its base64 float32 bytes.")


class Usage(BaseModel):
    """Tokens read, after truncation."""

    model_config = ConfigDict(extra="forbid")

    prompt_tokens: int = Field(ge=0, description="Tokens the model read, prompts and special tokens included.")
    total_tokens: int = Field(ge=0, description="The same as prompt_tokens: embeddings generate nothing.")


class EmbeddingResponse(BaseModel):
    """OpenAI-compatible embeddings response."""

    model_config = ConfigDict(extra="forbid")

    object: Literal["list"] = Field("list", description="Always 'list'.")
    data: list[Embedding] = Field(description="One embedding per input, in input order.")
    model: str = Field(description="Id of the retriever checkpoint that embedded.")
    usage: Usage = Field(description="Tokens read.")


class RerankDocument(BaseModel):
    """A document given as an object (Cohere accepts both strings and ``{"text": ...}``)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=_HARD_TEXT_CHARS, description="The document's text.")


class RerankRequest(BaseModel):
    """Cohere-compatible rerank request."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "query": "谁可以成为个体工商户？",
                    "documents": ["自然人从事工商业经营，经依法登记，为个体工商户。", "当事人应当遵循诚信原则。"],
                    "top_n": 1,
                    "return_documents": True,
                }
            ]
        },
    )

    query: str = Field(min_length=1, max_length=_HARD_TEXT_CHARS, description="The query.")
    documents: list[str | RerankDocument] = Field(min_length=1, description="Documents to score against the query.")
    top_n: int | None = Field(
        None, ge=1, description="Results wanted, best first; default all documents, and never more than them."
    )
    return_documents: bool = Field(False, description="Whether each result repeats its document.")
    model: str | None = Field(None, description="Accepted for compatibility; the release's reranker scores.")
    max_chunks_per_doc: int | None = Field(None, description="Accepted for compatibility; documents are not chunked.")

    _query_not_blank = field_validator("query")(_not_blank)

    def texts(self) -> list[str]:
        """The documents as plain strings."""
        return [doc if isinstance(doc, str) else doc.text for doc in self.documents]


class RerankResult(BaseModel):
    """One scored document."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, description="Position of the document in the request.")
    relevance_score: float = Field(ge=0, le=1, description="Sigmoid of the reranker's logit: 1 is most relevant.")
    document: RerankDocument | None = Field(None, description="The document, when return_documents was true.")


class RerankResponse(BaseModel):
    """Cohere-compatible rerank response."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="An id of this answer.")
    results: list[RerankResult] = Field(description="The documents, most relevant first.")
    model: str = Field(description="Id of the reranker checkpoint that scored.")


class ComponentInfo(BaseModel):
    """One component as it serves now."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str = Field(description="Id of the checkpoint artifact.")
    index: str | None = Field(None, description="Id of the index artifact (retriever only).")
    base_model: str = Field(description="The base model the checkpoint was trained from.")
    max_lengths: dict[str, int] = Field(description="Tokens kept of each input side; longer inputs are cut.")
    documents: int | None = Field(None, description="Documents in the index (retriever only).")
    precision: Literal["fp32", "bf16"] = Field(description="The precision the component's model passes run at.")


class ReadyResponse(BaseModel):
    """Both components loaded and answering."""

    model_config = ConfigDict(extra="forbid")

    status: str = Field(description="Always 'ready' (an unready gateway answers 503).")
    release: str = Field(description="The release served.")
    versions: Versions = Field(description="The retriever, index and reranker that answered.")


class InfoResponse(BaseModel):
    """What serves: the release, its components, its applications and the request limits."""

    model_config = ConfigDict(extra="forbid")

    release: str = Field(description="The release's name.")
    release_version: int = Field(description="The release version whose components serve.")
    retriever: ComponentInfo = Field(description="The retriever.")
    reranker: ComponentInfo = Field(description="The reranker.")
    applications: dict[str, AppSettings] = Field(description="Each application's k, top_n, rerank and weight.")
    limits: dict[str, int] = Field(description="Request limits (see docs/serving.md).")


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer."""

    model_config = ConfigDict(extra="forbid")

    error: str = Field(description="What is wrong, naming the part of the request at fault.")
    request_id: str = Field(
        description="The request's id (also the X-Request-Id header): the gateway's log names it with the detail."
    )
