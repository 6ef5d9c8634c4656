"""Request batching of the component deployments: ``@serve.batch`` with the configured queue sizes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from ray import serve

from backbone.serving.config import DEFAULT_BATCHING, Batching

Method = TypeVar("Method", bound=Callable[..., Any])


def batched(method: Method) -> Method:
    """``@serve.batch`` with :data:`DEFAULT_BATCHING`'s sizes until :func:`configure_batching` applies the config's.

    Ray types a batched method as taking one list; Serve also batches methods of several list arguments (one per
    request field), as the components' are. This keeps the method's own signature for the type checker.

    Example:
        >>> @batched  # doctest: +SKIP
        ... async def search(self, queries: list[str], ks: list[int]) -> list[list[Candidate]]: ...
    """
    return cast(Method, serve.batch(**DEFAULT_BATCHING.model_dump())(method))


class _BatchQueue(Protocol):
    """A method wrapped by ``@serve.batch``: its queue is resized at run time."""

    def set_max_batch_size(self, new_max_batch_size: int) -> None: ...

    def set_batch_wait_timeout_s(self, new_batch_wait_timeout_s: float) -> None: ...


def configure_batching(batching: Batching, *batched_methods: Callable[..., Any]) -> None:
    """Size the ``@serve.batch`` queues of ``batched_methods`` (each wrapped by :func:`batched`) by ``batching``.

    Example:
        >>> configure_batching(Batching(max_batch_size=32), self.search, self.embed)  # doctest: +SKIP
    """
    for method in batched_methods:
        queue = cast(_BatchQueue, method)
        queue.set_max_batch_size(batching.max_batch_size)
        queue.set_batch_wait_timeout_s(batching.batch_wait_timeout_s)
