"""The two components of a backbone, described symmetrically: a retriever (bi-encoder) and a reranker
(cross-encoder), each a base model plus a curriculum of stages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field, model_validator

from backbone.recipes.base import FieldError, StrictModel
from backbone.recipes.inference import Inference
from backbone.recipes.stages import RerankerStage, RetrieverStage, Stage


class Component(StrictModel):
    """What the retriever and the reranker share: a base model, how texts are shaped, and the stages."""

    model: str = Field(
        description="Base model: a Hugging Face id (looked up in the local model directory first) or a path "
        "relative to the recipe file."
    )
    family: Literal["encoder", "decoder"] = Field(
        "encoder", description="encoder: BERT/XLM-R style; decoder: Qwen3-style decoder-only models."
    )
    query_prefix: str = Field("", description="Text put before every query, e.g. 'query: ' for e5 models.")
    passage_prefix: str = Field("", description="Text put before every passage, e.g. 'passage: ' for e5 models.")
    passage_template: str = Field(
        "{title}\n{text}", description="How a document becomes a passage; may use {title} and {text}."
    )
    freeze_embeddings: bool = Field(
        False,
        description="Freeze the word-embedding matrix: on CPU it dominates step time for multilingual models.",
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute each layer's activations in the backward pass instead of keeping them: large models "
        "(4B on a GPU) train in far less memory for about a third more compute per step; same gradients.",
    )
    inference: Inference = Field(
        default_factory=Inference,
        description="Precision and token budget of every model pass (evaluation, mining, the search, Serve); recorded "
        "in each checkpoint, so the search measures what will serve.",
    )
    # Sequence: each component narrows it to a list of its own stages.
    stages: Sequence[Stage] = Field(default_factory=list, description="The curriculum, trained in this order.")

    @model_validator(mode="after")
    def _stage_names_unique(self) -> Component:
        seen: dict[str, int] = {}
        for index, stage in enumerate(self.stages):
            if stage.name in seen:
                raise FieldError(f"stages[{index}].name", f"{stage.name!r} repeats stages[{seen[stage.name]}].name")
            seen[stage.name] = index
        try:
            self.passage_template.format(title="", text="")
        except (KeyError, IndexError, ValueError) as err:
            raise FieldError(
                "passage_template", f"{self.passage_template!r} may only use {{title}} and {{text}} ({err})"
            ) from None
        return self

    def stage_names(self) -> list[str]:
        """``base`` (the untrained model) followed by every stage name, in training order."""
        return ["base", *(stage.name for stage in self.stages)]


class Retriever(Component):
    """The bi-encoder: encodes queries and passages separately; the corpus is indexed once per checkpoint."""

    stages: list[RetrieverStage] = Field(default_factory=list, description="The curriculum, in training order.")
    pooling: Literal["mean", "cls", "last_token"] = Field(
        "mean", description="How token states become one vector (decoder models use last_token)."
    )
    instruction: str = Field(
        "",
        description="Decoder embedders only: the task description, which each query is read after, Qwen3-Embedding "
        "style ('Instruct: <instruction>\\nQuery:<query>'); give the description alone, without that frame.",
    )
    max_query_length: int = Field(
        64,
        ge=8,
        le=8192,
        description="Tokens of a query with its prompt (query_prefix or instruction) and special tokens; longer "
        "queries are cut.",
    )
    max_passage_length: int = Field(
        256, ge=8, le=8192, description="Passage tokens kept; longer passages are cut at the end."
    )
    document_encoder: Literal["trained", "frozen"] = Field(
        "trained",
        description="trained: every stage fine-tunes one tower for queries and passages (each stage re-indexes "
        "the corpus); frozen: stages train a query tower only, the passage tower stays the base model's, so every "
        "stage shares the base checkpoint's corpus index (encoded once per curriculum).",
    )

    @model_validator(mode="after")
    def _options_agree(self) -> Retriever:
        if self.family == "decoder" and self.pooling != "last_token":
            raise FieldError("pooling", f"a decoder retriever needs 'last_token' (got {self.pooling!r})")
        if self.instruction.lstrip().startswith("Instruct:") or "\nQuery:" in self.instruction:
            raise FieldError(
                "instruction",
                "give the task description alone: the retriever writes the 'Instruct: ...\\nQuery:' frame around "
                f"it (got {self.instruction!r})",
            )
        for index, stage in enumerate(self.stages):
            if stage.contrast == "corpus" and self.document_encoder != "frozen":
                raise FieldError(
                    f"stages[{index}].contrast",
                    "'corpus' scores queries against the shared corpus index, which needs document_encoder: frozen "
                    f"(got {self.document_encoder!r})",
                )
        return self


class Reranker(Component):
    """The cross-encoder: scores a (query, passage) pair jointly."""

    stages: list[RerankerStage] = Field(default_factory=list, description="The curriculum, in training order.")
    max_length: int = Field(
        320, ge=16, le=8192, description="Tokens of query and passage together; the passage is cut first."
    )
    max_query_length: int = Field(64, ge=8, le=8192, description="Query tokens kept within max_length.")
    scoring: Literal["head", "mean", "yes_no"] = Field(
        "head",
        description="head: a one-logit classification head over the [CLS] pooler (encoders); mean: a one-logit "
        "linear head over the mean of the pair's token states (encoders trained for mean pooling, such as e5, whose "
        "[CLS] state barely varies); yes_no: the logit of 'yes' against 'no' from a decoder's language-model head.",
    )
    layers: int | None = Field(
        None,
        ge=1,
        description="Build the reranker from the first N transformer layers of its base model (a 6-layer "
        "cross-encoder costs about half of a 12-layer one); null keeps them all. Checkpoints save N layers.",
    )
    candidates: Literal["bm25", "retriever"] = Field(
        "bm25",
        description="The candidate lists the reranker is trained (mined) and evaluated on: bm25 over the corpus, "
        "or retriever: the top documents of the recipe's untrained retriever (its base checkpoint and index, "
        "trained first), the lists it reranks when it serves (Localized Contrastive Estimation).",
    )

    @model_validator(mode="after")
    def _scoring_matches_family(self) -> Reranker:
        if self.family == "decoder" and self.scoring != "yes_no":
            raise FieldError("scoring", f"a decoder reranker scores with 'yes_no' (got {self.scoring!r})")
        if self.family == "encoder" and self.scoring not in ("head", "mean"):
            raise FieldError("scoring", f"an encoder reranker scores with 'head' or 'mean' (got {self.scoring!r})")
        if self.max_query_length >= self.max_length:
            raise FieldError(
                "max_query_length",
                f"{self.max_query_length} leaves no room for the passage in max_length {self.max_length}",
            )
        for index, stage in enumerate(self.stages):
            if stage.loss == "distill_kl" and self.candidates != "retriever":
                raise FieldError(
                    f"stages[{index}].loss",
                    "distill_kl learns the retriever's scores over the retriever's candidate lists: set "
                    f"candidates: retriever (got {self.candidates!r})",
                )
        return self
