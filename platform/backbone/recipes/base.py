"""The pydantic base every recipe section shares: unknown fields are errors, never silently ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A recipe section: forbids unknown fields so that a typo fails loudly at ``recipe check``."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldError(ValueError):
    """Raised by a section's validator about one field inside that section, so errors point at the field.

    Args:
        field: the field's path relative to the section, e.g. ``stages[2].name``.
        message: what is wrong with it.

    Example:
        >>> str(FieldError("count", "must be 0 with policy 'in_batch'"))
        "count: must be 0 with policy 'in_batch'"
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
