"""Loading a model prints nothing: transformers' "Loading weights" bar is turned off, and only that bar.

Every stage, every Ray task of the search and every Serve replica loads models, so one bar per load floods a
``backbone run`` or ``ray job submit`` log with lines that say nothing about the run. Other transformers and
Hugging Face Hub bars (a first download of a model, for instance) keep showing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers.utils import logging as transformers_logging

_WEIGHT_LOADING = "Loading weights"


def silence_weight_loading() -> None:
    """Install the hook that disables the weight-loading bar (idempotent; :mod:`backbone.models` calls it).

    Example:
        >>> silence_weight_loading()
    """
    transformers_logging.set_tqdm_hook(_without_weight_loading)


def _without_weight_loading(factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if kwargs.get("desc") == _WEIGHT_LOADING:
        kwargs = {**kwargs, "disable": True}
    return factory(*args, **kwargs)
