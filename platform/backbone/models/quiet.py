"""Loading or saving a model prints nothing that says nothing about the run.

A reranker built from an encoder gets a new scoring head on purpose; :func:`expecting_new_head` drops the two
warnings that say so (sentence-transformers' "Converting ... to CrossEncoder" and transformers' LOAD REPORT whose
only rows are the head's MISSING weights). A report that names any other weight still shows.

Every stage, every Ray task of the search and every Serve replica loads models, and every stage saves one, so what
each load or save prints is repeated once per process: transformers' "Loading weights" and "Writing model shards"
bars, and sentence-transformers' INFO lines ("Loading SentenceTransformer model from ...", "No device provided,
using cpu", "Loaded 2 prompts ..."; Ray workers log INFO). Those two bars are turned off, and only those; other
transformers and Hugging Face Hub bars (a first download of a model, for instance) keep showing, and
sentence-transformers' warnings still reach the log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HEAD = "classifier."


@contextmanager
def expecting_new_head() -> Iterator[None]:
    """Within it, the warnings that a new classification head was added to an encoder are dropped, and only those.

    Example:
        >>> with expecting_new_head():
        ...     model = CrossEncoder("intfloat/multilingual-e5-small", num_labels=1)  # doctest: +SKIP
    """
    loggers = [logging.getLogger(name) for name in ("transformers.modeling_utils", "sentence_transformers.base.model")]
    for logger in loggers:
        logger.addFilter(_not_about_the_new_head)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(_not_about_the_new_head)


def _not_about_the_new_head(record: logging.LogRecord) -> bool:
    message = _ANSI.sub("", record.getMessage())
    if message.startswith("Converting ") and message.endswith(" to CrossEncoder."):
        return False
    if " LOAD REPORT from: " not in message:
        return True
    rows = [line.split("|") for line in message.splitlines() if line.count("|") >= 2]
    weights = [(cells[0].strip(), cells[1].strip()) for cells in rows[1:] if not set(cells[0]) <= set("-+ ")]
    return not weights or not all(key.startswith(_HEAD) and status == "MISSING" for key, status in weights)
