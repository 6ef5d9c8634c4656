"""The wait of a component's next batch: the configured one while the model is idle, the running pass's end else."""

from __future__ import annotations

import pytest

from backbone.serving.batching import Pace, batched, configure_batching
from backbone.serving.config import Batching


def test_an_idle_model_waits_the_configured_time() -> None:
    pace = Pace(idle_wait_s=0.005)
    assert pace.wait_s(now=100.0) == 0.005
    pace.last_pass_s = 0.4  # a pass ran and ended: the model is idle again
    assert pace.wait_s(now=200.0) == 0.005


def test_a_request_arriving_during_a_pass_waits_for_its_expected_end() -> None:
    pace = Pace(idle_wait_s=0.005, running_since=10.0, last_pass_s=0.3)
    assert pace.wait_s(now=10.1) == pytest.approx(0.2)
    assert pace.wait_s(now=10.29) == pytest.approx(0.01)
    # A pass running past the last one's duration: the batch waits no less than the idle wait.
    assert pace.wait_s(now=11.0) == 0.005


class _Component:
    @batched
    async def score(self, queries: list[str]) -> list[int]:
        return [len(query) for query in queries]

    @batched
    async def embed(self, texts: list[str]) -> list[int]:
        return [len(text) for text in texts]


def test_each_batched_method_has_its_own_pace_and_takes_the_configured_wait() -> None:
    component = _Component()
    configure_batching(Batching(max_batch_size=4, batch_wait_timeout_s=0.02), component.score)
    assert _Component.score.pace.idle_wait_s == 0.02  # type: ignore[attr-defined]
    assert _Component.embed.pace.idle_wait_s == Batching().batch_wait_timeout_s  # type: ignore[attr-defined]
    assert _Component.score.__name__ == "score"  # Serve finds the method's ``self`` by this name
