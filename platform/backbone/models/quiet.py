"""Loading or saving a model prints nothing that says nothing about the run.

Every stage, every Ray task of the search and every Serve replica loads models, and every stage saves one, so what
each load or save prints is repeated once per process: transformers' "Loading weights" and "Writing model shards"
bars, and sentence-transformers' INFO lines ("Loading SentenceTransformer model from ...", "No device provided,
using cpu", "Loaded 2 prompts ..."; Ray workers log INFO). Those two bars are turned off, and only those; other
transformers and Hugging Face Hub bars (a first download of a model, for instance) keep showing, and
sentence-transformers' warnings still reach the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from transformers.utils import logging as transformers_logging

_SILENT_BARS = frozenset({"Loading weights", "Writing model shards"})


def silence_model_io() -> None:
    """Turn off the per-load and per-save output (idempotent; :mod:`backbone.models` calls it on import).

    Example:
        >>> silence_model_io()
    """
    transformers_logging.set_tqdm_hook(_without_model_io_bars)
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)


def _without_model_io_bars(factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if kwargs.get("desc") in _SILENT_BARS:
        kwargs = {**kwargs, "disable": True}
    return factory(*args, **kwargs)
