"""Request batching of the component deployments: ``@serve.batch``, with batches that close when the model frees up.

Ray's batch queue closes a batch ``batch_wait_timeout_s`` after its first request, even while the previous batch
still holds the model; that batch then waits for the model with the few requests it caught, and the requests
arriving meanwhile start yet another small batch. On 2 cores, with 8 clients of one-sentence embeddings, batches
stayed at 1-2 requests and the retriever answered 38 to 47 a second. :func:`batched` therefore sets each batch's wait
when its first request arrives: while the model is idle, ``batch_wait_timeout_s`` if the last pass
had company and none if it ran alone (one client's requests do not wait for requests that are not coming); while a
pass runs, until that pass is expected to end (its work at the last pass's pace), so that the requests arriving
during a pass run together in the next one (docs/benchmarks.md, "Batches that wait for the model").
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from ray import serve

from backbone.serving.config import DEFAULT_BATCHING, Batching

Method = TypeVar("Method", bound=Callable[..., Any])


@dataclass
class Pace:
    """When a batch queue's next batch closes: at once or after the configured wait while the model is idle, else at
    the running pass's end.

    A batch whose first request finds the model idle waits ``idle_wait_s`` for company only if the last pass had
    some (it ran several requests, or requests arrived while it ran): under load, the clients that one pass answered
    send their next requests together, and waiting lets them run as one batch; a lone request after a lone pass
    (one client) runs at once instead of waiting for requests that are not coming. A pass's end is estimated from
    its work (:func:`work_units`: texts, documents or queries) at the seconds a unit took in the last pass, so that a
    short pass after a long one (two documents after five hundred) is not awaited as long as that one.

    Args:
        idle_wait_s: how long a batch whose first request finds the model idle waits for more, after a pass that
            had company.

    Example:
        >>> pace = Pace(idle_wait_s=0.005)
        >>> pace.arrive(now=10.0)  # no pass has run: no company to wait for
        0.0
        >>> pace.start(units=8, requests=2, now=10.0)
        >>> pace.end(now=10.2)  # 8 units in 0.2 s, for two requests
        >>> pace.arrive(now=10.5)  # idle after a pass with company
        0.005
        >>> pace.start(units=4, requests=1, now=11.0)  # expected to end at 11.1
        >>> round(pace.arrive(now=11.05), 3)  # a request arriving 50 ms into it waits for that
        0.05
    """

    idle_wait_s: float
    running_since: float | None = None
    running_units: int = 0
    seconds_per_unit: float = 0.0
    had_company: bool = False  # the last pass ran several requests, or requests arrived while it ran

    def start(self, units: int, requests: int, now: float) -> None:
        """A pass of ``units`` of work for ``requests`` requests begins at ``now`` (``time.monotonic()``)."""
        self.running_since, self.running_units, self.had_company = now, units, requests > 1

    def end(self, now: float) -> None:
        """The running pass ended at ``now``: its seconds per unit estimate the next pass."""
        if self.running_since is not None:
            self.seconds_per_unit = (now - self.running_since) / max(self.running_units, 1)
        self.running_since = None

    def arrive(self, now: float) -> float:
        """A request arrives at ``now`` (``time.monotonic()``): the wait of its batch if it is the first in line."""
        if self.running_since is None:
            return self.idle_wait_s if self.had_company else 0.0
        self.had_company = True  # this request arrived while the pass ran
        expected_end = self.running_since + self.seconds_per_unit * self.running_units
        return max(self.idle_wait_s, expected_end - now)


def work_units(batch: tuple[list[Any], ...]) -> int:
    """The work of a batch (one list per argument, one item per request): each request's longest list argument
    (an embedding request's texts, a rerank's documents), or 1 (a search's query).

    Example:
        >>> work_units(([["a", "b"], ["c"]], ["query", "passage"]))  # two embedding requests of 2 and 1 texts
        3
    """
    requests = zip(*batch, strict=True)
    return sum(max((len(item) for item in request if isinstance(item, list)), default=1) for request in requests)


class _RayQueue(Protocol):
    """A method wrapped by ``@serve.batch``: its queue's sizes are set at run time."""

    def __call__(self, *request: Any) -> Any: ...

    def set_max_batch_size(self, new_max_batch_size: int) -> None: ...

    def set_batch_wait_timeout_s(self, new_batch_wait_timeout_s: float) -> None: ...


class _PacedQueue(Protocol):
    """A method wrapped by :func:`batched`: its queue is resized, and its pace set, at run time."""

    pace: Pace
    set_max_batch_size: Callable[[int], None]


def batched(method: Method) -> Method:
    """``@serve.batch`` with :data:`DEFAULT_BATCHING`'s sizes until :func:`configure_batching` applies the config's,
    each batch waiting as :class:`Pace` says.

    Ray types a batched method as taking one list; Serve also batches methods of several list arguments (one per
    request field), as the components' are. This keeps the method's own signature for the type checker.

    Example:
        >>> @batched  # doctest: +SKIP
        ... async def search(self, queries: list[str], ks: list[int]) -> list[list[Candidate]]: ...
    """
    pace = Pace(DEFAULT_BATCHING.batch_wait_timeout_s)

    @functools.wraps(method)
    async def timed_pass(self: object, *batch: list[Any]) -> list[Any]:
        pace.start(work_units(batch), len(batch[0]), time.monotonic())
        try:
            return await method(self, *batch)
        finally:
            pace.end(time.monotonic())

    queue = cast(_RayQueue, serve.batch(**DEFAULT_BATCHING.model_dump())(timed_pass))

    # Serve finds ``self`` by checking that the attribute of this name wraps the function it batches: timed_pass.
    @functools.wraps(timed_pass)
    async def enqueue(self: object, *request: Any) -> Any:
        queue.set_batch_wait_timeout_s(pace.arrive(time.monotonic()))  # read when this request is first in line
        return await queue(self, *request)

    paced = cast(_PacedQueue, enqueue)
    paced.pace, paced.set_max_batch_size = pace, queue.set_max_batch_size
    return cast(Method, enqueue)


def configure_batching(batching: Batching, *batched_methods: Callable[..., Any]) -> None:
    """Size the queues of ``batched_methods`` (each wrapped by :func:`batched`) and set their idle wait by ``batching``.

    Example:
        >>> configure_batching(Batching(max_batch_size=32), self.search, self.embed)  # doctest: +SKIP
    """
    for method in batched_methods:
        paced = cast(_PacedQueue, method)
        paced.set_max_batch_size(batching.max_batch_size)
        paced.pace.idle_wait_s = batching.batch_wait_timeout_s
