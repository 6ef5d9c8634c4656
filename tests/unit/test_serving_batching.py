"""The wait of a component's next batch: while the model is idle, the configured one after a pass with company and
none after a lone one; while a pass runs, that pass's expected end."""

from __future__ import annotations

import asyncio
import time

import pytest

from backbone.serving.batching import Pace, batched, configure_batching, work_units
from backbone.serving.config import Batching


def test_an_idle_model_waits_the_configured_time_after_a_pass_of_several_requests() -> None:
    pace = Pace(idle_wait_s=0.005)
    pace.start(units=10, requests=4, now=100.0)
    pace.end(now=100.4)  # the pass ended: the model is idle again
    assert pace.arrive(now=200.0) == 0.005


def test_an_idle_model_waits_the_configured_time_after_a_pass_others_arrived_during() -> None:
    pace = Pace(idle_wait_s=0.005)
    pace.start(units=1, requests=1, now=100.0)
    pace.arrive(now=100.1)  # a second client's request, while the lone pass runs
    pace.end(now=100.2)
    assert pace.arrive(now=100.3) == 0.005


def test_a_lone_request_after_a_lone_pass_runs_at_once() -> None:
    pace = Pace(idle_wait_s=0.005)
    assert pace.arrive(now=100.0) == 0.0  # nothing has run yet
    pace.start(units=1, requests=1, now=100.0)
    pace.end(now=100.1)
    assert pace.arrive(now=100.3) == 0.0  # one client: nobody else is coming
    pace.start(units=5, requests=5, now=101.0)  # load arrives
    pace.end(now=101.1)
    pace.start(units=1, requests=1, now=101.2)  # and goes: one lone pass is enough to stop waiting
    pace.end(now=101.3)
    assert pace.arrive(now=102.0) == 0.0


def test_a_request_arriving_during_a_pass_waits_for_its_expected_end() -> None:
    pace = Pace(idle_wait_s=0.005)
    pace.start(units=3, requests=1, now=9.0)
    pace.end(now=9.3)  # 0.1 s a unit
    pace.start(units=3, requests=1, now=10.0)
    assert pace.arrive(now=10.1) == pytest.approx(0.2)
    assert pace.arrive(now=10.29) == pytest.approx(0.01)
    # A pass running past its expected end: the batch waits no less than the idle wait.
    assert pace.arrive(now=11.0) == 0.005


def test_a_short_pass_after_a_long_one_is_expected_to_be_short() -> None:
    pace = Pace(idle_wait_s=0.005)
    pace.start(units=500, requests=1, now=0.0)  # a rerank of 500 documents
    pace.end(now=25.0)
    pace.start(units=2, requests=1, now=30.0)  # then one of 2: 0.1 s, not 25
    assert pace.arrive(now=30.0) == pytest.approx(0.1)


def test_a_batchs_work_is_its_texts_or_documents_else_its_requests() -> None:
    embeddings = ([["a", "b", "c"], ["d"]], ["query", "passage"])
    assert work_units(embeddings) == 4
    reranks = (["q1", "q2"], [[("title", "text")] * 20, ["plain"] * 5])
    assert work_units(reranks) == 25
    searches = (["q1", "q2", "q3"], [10, 20, 20])
    assert work_units(searches) == 3


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


def test_the_pass_tells_its_pace_how_many_requests_it_ran() -> None:
    component, pace = _Component(), _Component.embed.pace  # type: ignore[attr-defined]
    run_pass = _Component.embed.__wrapped__  # what Ray's queue calls with a batch: one list per argument
    assert asyncio.run(run_pass(component, ["a", "bb"])) == [1, 2]
    assert pace.had_company and pace.running_since is None  # two requests, and the pass has ended
    asyncio.run(run_pass(component, ["a"]))
    assert not pace.had_company and pace.arrive(time.monotonic()) == 0.0
