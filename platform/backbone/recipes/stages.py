"""One stage of a component's curriculum: what it trains on, which negatives, which loss, how long.

A stage always starts from the previous stage's checkpoint (the first from the base model). Stages are data:
add, drop or reorder them in the recipe's YAML; no code path is tied to a stage's name or position.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from backbone.recipes.base import FieldError, StrictModel

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class FullFinetune(StrictModel):
    """Update every trainable weight of the component."""

    method: Literal["full"] = Field("full", description="Full fine-tuning of all trainable weights.")


class LoraFinetune(StrictModel):
    """Train a LoRA adapter (peft) on top of the previous stage; adapters are merged on export."""

    method: Literal["lora"] = Field(description="Low-rank adapters; stacked across stages, merged on export.")
    rank: int = Field(8, ge=1, le=256, description="Rank r of each adapter matrix.")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator (the update is scaled by alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapter's input.")
    target_modules: list[str] | None = Field(
        None, description="Module names to adapt; null lets peft pick the attention projections of the family."
    )


Finetune = Annotated[FullFinetune | LoraFinetune, Field(discriminator="method")]


class QuerySelection(StrictModel):
    """Which training queries a stage keeps, judged with the current checkpoint before the stage starts."""

    mode: Literal["all", "failing", "ambiguous"] = Field(
        "all",
        description=(
            "all: every query of the stage's tables; failing: queries whose best positive the current model "
            "ranks below `rank_threshold`; ambiguous: queries with at least `min_relevant` relevant documents "
            "or whose best negative scores within `margin` of the positive."
        ),
    )
    rank_threshold: int = Field(10, ge=1, description="failing: a query fails when no positive is in this top.")
    margin: float = Field(0.05, ge=0, description="ambiguous: positive minus best-negative score below this.")
    min_relevant: int = Field(2, ge=2, description="ambiguous: queries with this many judged documents or more.")


class Negatives(StrictModel):
    """Where a stage's negatives come from.

    ``in_batch`` uses only the other positives of the batch; ``mined`` mines hard negatives once, with the
    checkpoint the stage starts from; ``remined`` mines again from the current model before every epoch.
    """

    policy: Literal["in_batch", "mined", "remined"] = Field(
        "in_batch", description="in_batch, mined (once, from the starting checkpoint) or remined (every epoch)."
    )
    count: int = Field(
        0,
        ge=0,
        le=64,
        description="Negatives per query. Retriever with in_batch: 0 (every other passage of the global batch is "
        "a negative); reranker with in_batch: how many other positives of the batch each query is paired with.",
    )
    rank_range: tuple[int, int] = Field(
        (3, 100), description="Mine from these ranks of the current model's results (1-based, inclusive)."
    )
    margin: float = Field(
        0.05,
        ge=0,
        description="False-negative filter (absolute): drop candidates of `rank_range` scored above the reference "
        "score (see `margin_reference`) minus this. Ignored when `relative_margin` is set.",
    )
    relative_margin: float | None = Field(
        None,
        ge=0,
        le=1,
        description="False-negative filter (relative), as sentence-transformers' mine_hard_negatives(relative_margin"
        "=...): drop candidates scored above reference - |reference| x relative_margin (0.05: keep a candidate "
        "only if it scores at least 5% of the reference's magnitude below it). When set it replaces `margin`; "
        "null uses `margin`.",
    )
    margin_reference: Literal["positive", "best"] = Field(
        "positive",
        description="The reference score the false-negative margins are taken from. positive: the example's "
        "positive; on a query whose positive the model ranks below the candidates (a failing query) that drops "
        "every candidate ranked above it, i.e. nearly all the hard ones. best: the query's best score, the higher "
        "of the positive's and the top-ranked document's: the same as positive where the positive ranks first; on "
        "a failing query only the candidates within the margin of the top one are dropped (they are the likeliest "
        "false negatives) and the hard ones ranked between them and the positive are kept.",
    )
    random_fraction: float = Field(
        0.25, ge=0, le=1, description="Share of negatives drawn at random from the corpus instead of mined."
    )

    @model_validator(mode="after")
    def _range_is_ordered(self) -> Negatives:
        if self.policy != "in_batch" and not self.count:
            raise FieldError("count", f"policy '{self.policy}' needs count >= 1")
        low, high = self.rank_range
        if not 1 <= low <= high:
            raise FieldError("rank_range", f"needs 1 <= start <= end (got [{low}, {high}])")
        return self


class StageData(StrictModel):
    """The training examples of a stage."""

    tables: list[str] = Field(
        description="Training tables of the prepared dataset: 'weak' (corpus-derived pairs) or a split's "
        "labelled pairs ('train').",
        min_length=1,
    )
    max_examples: int | None = Field(None, ge=1, description="Cap on examples (a seeded sample); null keeps all.")
    queries: QuerySelection = Field(default_factory=QuerySelection, description="Which queries the stage keeps.")


class Stage(StrictModel):
    """A curriculum stage. Subclasses name the losses their component accepts."""

    losses: ClassVar[tuple[str, ...]] = ()

    name: str = Field(description="Stage name, unique within the component (lowercase, digits, '-', '_').")
    description: str = Field("", description="What this stage is for, shown in reports.")
    data: StageData = Field(description="The stage's training examples.")
    negatives: Negatives = Field(default_factory=Negatives, description="Where negatives come from.")
    loss: str = Field(description="Training loss; the choices depend on the component.")
    epochs: int = Field(1, ge=1, le=100, description="Passes over the stage's examples.")
    learning_rate: float = Field(2e-5, gt=0, lt=1, description="Peak learning rate (linear warmup and decay).")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps spent warming up.")
    batch_size: int = Field(16, ge=1, description="Global batch size across all workers.")
    finetune: Finetune = Field(default_factory=FullFinetune, description="Full fine-tuning or LoRA.")

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, name: str) -> str:
        if not _NAME.match(name) or name == "base":
            raise ValueError(
                f"invalid stage name {name!r}: use lowercase letters, digits, '-' and '_' ('base' is reserved "
                "for the untrained model)"
            )
        return name

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, loss: str) -> str:
        if loss not in cls.losses:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(cls.losses)}")
        return loss


class RetrieverStage(Stage):
    """A retriever stage: contrastive training of the bi-encoder."""

    losses: ClassVar[tuple[str, ...]] = ("infonce",)

    temperature: float = Field(
        0.05, gt=0, le=1, description="InfoNCE temperature; similarities are divided by it (scale = 1/T)."
    )
    contrast: Literal["batch", "corpus"] = Field(
        "batch",
        description="What each query's softmax runs over. batch: the global batch's positives and the mined "
        "negatives; corpus (needs the retriever's `document_encoder: frozen`): every passage of the shared corpus "
        "index, each query's judged passages but its positive masked (full-corpus InfoNCE: passages are rows of the "
        "index, so thousands of negatives cost one matrix product).",
    )

    @model_validator(mode="after")
    def _in_batch_takes_whole_batch(self) -> RetrieverStage:
        if self.contrast == "corpus" and self.negatives.policy != "in_batch":
            raise FieldError(
                "negatives.policy",
                f"must be 'in_batch' with contrast 'corpus' (got {self.negatives.policy!r}): every passage of the "
                "corpus, scored by the current model at every step, is already a negative",
            )
        if self.negatives.policy == "in_batch" and self.negatives.count:
            raise FieldError(
                "negatives.count",
                f"must be 0 with policy 'in_batch' (got {self.negatives.count}): every other passage of the "
                "global batch is already a negative; use 'mined' for hard negatives",
            )
        return self


class RerankerStage(Stage):
    """A reranker stage: pointwise (bce), listwise (listwise_ce over one positive and n negatives), or distillation
    from the retriever's scores over the same lists (distill_kl).

    With ``in_batch`` negatives a query is paired with ``negatives.count`` other positives of its batch.
    ``distill_kl`` over query i's list (its positive and negatives), with s the reranker's logits and t the
    retriever's inner products: ``(1 - ce_weight) * KL(softmax(t / teacher_temperature) || softmax(s))
    + ce_weight * -log softmax(s)[positive]``, averaged over the queries.
    """

    losses: ClassVar[tuple[str, ...]] = ("bce", "listwise_ce", "distill_kl")

    teacher_temperature: float = Field(
        0.05,
        gt=0,
        le=1,
        description="distill_kl only: the retriever's inner products (cosines) are divided by this before their "
        "softmax; lower makes the teacher's distribution sharper. Set it near the retriever's own training "
        "temperature (e5: 0.01): over e5's narrow band of cosines 0.05 gives a nearly uniform teacher.",
    )
    ce_weight: float = Field(
        0.0,
        ge=0,
        le=1,
        description="distill_kl only: weight of the listwise cross-entropy on the positive mixed into the KL term "
        "(loss = (1 - ce_weight) * KL + ce_weight * CE); 0 is pure distillation.",
    )

    @model_validator(mode="after")
    def _in_batch_needs_a_count(self) -> RerankerStage:
        # A cross-encoder scores each pair on its own: in-batch negatives must be paired explicitly, so say how many.
        if self.negatives.policy == "in_batch" and not self.negatives.count:
            raise FieldError("negatives.count", "a reranker with policy 'in_batch' needs count >= 1")
        for name in ("teacher_temperature", "ce_weight"):
            if name in self.model_fields_set and self.loss != "distill_kl":
                raise FieldError(name, f"only loss 'distill_kl' reads it (this stage's loss is {self.loss!r})")
        return self
