"""Releases: create, promote and roll back one component at a time, with history, checks and racing writers."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _registry_helpers import finish, publish, start_together

from backbone.errors import RegistryError
from backbone.registry import AppSettings, Registry, Releases, RerankerSlot, RetrieverSlot
from s3_server import moto_s3


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(str(tmp_path / "registry"))


@pytest.fixture
def releases(registry: Registry) -> Releases:
    return Releases(registry)


def _retriever(registry: Registry, with_index: bool = True) -> tuple[str, str | None]:
    checkpoint = publish(registry, name="retriever/ckpt").id
    index = publish(registry, "index", {"index.faiss": b"idx"}, parents=[checkpoint]).id if with_index else None
    return checkpoint, index


def _reranker(registry: Registry) -> str:
    return publish(registry, name="reranker/ckpt").id


def _create(releases: Releases, name: str = "legal") -> tuple[str, str | None, str]:
    retriever, index = _retriever(releases.registry)
    reranker = _reranker(releases.registry)
    releases.create(
        name,
        retriever_checkpoint=retriever,
        retriever_index=index,
        reranker_checkpoint=reranker,
        applications={"search": AppSettings(k=100, top_n=10, rerank=True)},
        note="first",
    )
    return retriever, index, reranker


def test_create_writes_version_one(releases: Releases, registry: Registry) -> None:
    retriever, index, reranker = _create(releases)

    record = Releases(registry).current("legal")
    assert record.version == 1 and record.previous_version is None
    assert record.retriever == RetrieverSlot(checkpoint=retriever, index=index)
    assert record.reranker == RerankerSlot(checkpoint=reranker)
    assert record.applications["search"].top_n == 10
    assert record.change == "create" and record.note == "first"
    stored = Path(registry.root.base) / "releases" / "legal" / "v000001.json"
    assert json.loads(stored.read_text())["retriever"]["checkpoint"] == retriever
    assert releases.names() == ["legal"]
    with pytest.raises(RegistryError, match="already exists"):
        _create(releases)


def test_promote_retriever_keeps_reranker_and_rollback_reranker_keeps_retriever(releases: Releases) -> None:
    retriever_1, index_1, reranker_1 = _create(releases)
    retriever_2, index_2 = _retriever(releases.registry)
    reranker_2 = _reranker(releases.registry)

    v2 = releases.promote("legal", "retriever", retriever_2, index=index_2, note="better recall")
    assert v2.version == 2 and v2.previous_version == 1
    assert v2.retriever == RetrieverSlot(checkpoint=retriever_2, index=index_2)
    assert v2.reranker.checkpoint == reranker_1
    assert v2.applications == releases.get("legal", 1).applications
    assert v2.change == f"promote retriever to {retriever_2} with index {index_2}"

    v3 = releases.promote("legal", "reranker", reranker_2)
    assert (v3.retriever.checkpoint, v3.reranker.checkpoint) == (retriever_2, reranker_2)

    v4 = releases.rollback("legal", "reranker")  # default: the reranker served before this one
    assert v4.reranker.checkpoint == reranker_1
    assert v4.retriever == RetrieverSlot(checkpoint=retriever_2, index=index_2)
    assert v4.change == f"rollback reranker to v2: {reranker_1}"

    v5 = releases.rollback("legal", "retriever", to_version=1)
    assert v5.retriever == RetrieverSlot(checkpoint=retriever_1, index=index_1)
    assert v5.reranker.checkpoint == reranker_1

    history = Releases(releases.registry).history("legal")
    assert [r.version for r in history] == [1, 2, 3, 4, 5]
    assert [r.previous_version for r in history] == [None, 1, 2, 3, 4]
    assert history[1] == releases.get("legal", 2)  # versions are never edited


def test_default_rollback_goes_back_past_versions_that_kept_the_component(releases: Releases) -> None:
    _, _, reranker_1 = _create(releases)
    retriever_2, _ = _retriever(releases.registry, with_index=False)
    reranker_2 = _reranker(releases.registry)
    releases.promote("legal", "reranker", reranker_2)
    releases.promote("legal", "retriever", retriever_2)  # v3 keeps reranker_2

    assert releases.rollback("legal", "reranker").reranker.checkpoint == reranker_1
    # Rolling back again undoes the rollback: the latest different reranker is reranker_2.
    assert releases.rollback("legal", "reranker").reranker.checkpoint == reranker_2


def test_rollback_with_nothing_to_go_back_to_is_an_error(releases: Releases) -> None:
    _create(releases)
    with pytest.raises(RegistryError, match="no earlier reranker to roll back to"):
        releases.rollback("legal", "reranker")
    with pytest.raises(RegistryError, match="already serves the retriever of v1"):
        releases.rollback("legal", "retriever", to_version=1)
    with pytest.raises(RegistryError, match="has no version 7"):
        releases.rollback("legal", "retriever", to_version=7)
    assert len(releases.history("legal")) == 1


def test_index_must_be_built_from_the_retriever_checkpoint(releases: Releases) -> None:
    _create(releases)
    retriever, _ = _retriever(releases.registry, with_index=False)
    _, foreign_index = _retriever(releases.registry)

    with pytest.raises(
        RegistryError, match=f"index {foreign_index} was not built from retriever checkpoint {retriever}"
    ):
        releases.promote("legal", "retriever", retriever, index=foreign_index)
    assert len(releases.history("legal")) == 1


def test_artifacts_must_exist_and_have_the_right_kind(releases: Releases) -> None:
    retriever, index, reranker = _create(releases)
    missing = "checkpoint-20250101T000000Z-00000000"

    with pytest.raises(RegistryError, match=f"reranker checkpoint: no artifact {missing}"):
        releases.promote("legal", "reranker", missing)
    with pytest.raises(RegistryError, match=f"retriever checkpoint {index} is of kind index, not checkpoint"):
        releases.promote("legal", "retriever", index)
    with pytest.raises(RegistryError, match="only the retriever has an index"):
        releases.promote("legal", "reranker", reranker, index=index)
    with pytest.raises(RegistryError, match="already serves"):
        releases.promote("legal", "retriever", retriever, index=index)


def test_unknown_release_and_bad_names(releases: Releases) -> None:
    _create(releases, "legal")
    with pytest.raises(RegistryError, match=r"no release 'medical' .*releases there: legal"):
        releases.current("medical")
    with pytest.raises(RegistryError, match="no release 'medical'"):
        releases.rollback("medical", "retriever")
    with pytest.raises(RegistryError, match="not a release name"):
        releases.history("../legal")
    with pytest.raises(RegistryError, match="'index' is no component"):
        releases.rollback("legal", "index")  # type: ignore[arg-type]


def test_app_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="top_n"):
        AppSettings(k=5, top_n=10)
    with pytest.raises(ValueError, match="greater than 0"):
        AppSettings(k=0, top_n=0)
    with pytest.raises(ValueError, match="weight"):
        AppSettings(k=5, top_n=5, weight=1.5)


def test_a_release_stores_each_application_weight_and_old_releases_load_at_weight_one(
    releases: Releases, registry: Registry
) -> None:
    retriever, index = _retriever(registry)
    reranker = _reranker(registry)
    apps = {"api": AppSettings(k=20, top_n=5), "chat": AppSettings(k=20, top_n=5, weight=0.25)}
    releases.propose(
        "legal", retriever_checkpoint=retriever, retriever_index=index, reranker_checkpoint=reranker, applications=apps
    )
    stored = Path(registry.root.base) / "releases" / "legal" / "v000001.json"
    record = json.loads(stored.read_text())
    assert {name: app["weight"] for name, app in record["applications"].items()} == {"api": 1.0, "chat": 0.25}

    for app in record["applications"].values():
        del app["weight"]  # as a release written before weights existed
    stored.write_text(json.dumps(record))
    assert {name: app.weight for name, app in Releases(registry).current("legal").applications.items()} == {
        "api": 1.0,
        "chat": 1.0,
    }


@pytest.fixture(params=["local", "s3"])
def shared_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """A registry that writers in other processes reach: a local folder, or a bucket on a local S3 server."""
    if request.param == "local":
        yield Registry(str(tmp_path / "registry"))
        return
    with moto_s3("releases"):  # the writers inherit the server's AWS environment
        yield Registry("s3://releases/registry")


def test_racing_release_writers_lose_nothing(shared_registry: Registry, tmp_path: Path) -> None:
    # On S3 every version is a PUT with If-None-Match: *, so two writers can never both write version N.
    releases = Releases(shared_registry)
    _create(releases)
    registry = releases.registry
    per_writer = 4
    plans = [("retriever", [_retriever(registry, with_index=False)[0] for _ in range(per_writer)]) for _ in range(3)]
    plans += [("reranker", [_reranker(registry) for _ in range(per_writer)]) for _ in range(3)]

    writers = start_together(
        tmp_path / "go", [["promote", registry.uri, "legal", component, *ids] for component, ids in plans]
    )
    written = [int(line) for writer in writers for line in finish(writer).split()]

    history = Releases(registry).history("legal")
    promotions = len(plans) * per_writer
    assert sorted(written) == list(range(2, 2 + promotions))
    assert [r.version for r in history] == list(range(1, 2 + promotions))
    promoted = set()
    for before, after in itertools.pairwise(history):
        # Each version changes exactly one component of the version before it: no change was made on a
        # stale version, so none was silently undone.
        assert after.previous_version == before.version
        changed = [c for c in ("retriever", "reranker") if after.slot(c) != before.slot(c)]
        assert len(changed) == 1, (before, after)
        promoted.add(after.slot(changed[0]).checkpoint)
    assert promoted == {checkpoint for _, ids in plans for checkpoint in ids}


def test_propose_creates_then_appends_only_what_differs(releases: Releases, registry: Registry) -> None:
    retriever, index = _retriever(registry)
    reranker = _reranker(registry)
    apps = {"api": AppSettings(k=20, top_n=5)}
    first = releases.propose(
        "legal", retriever_checkpoint=retriever, retriever_index=index, reranker_checkpoint=reranker, applications=apps
    )
    again = releases.propose(
        "legal", retriever_checkpoint=retriever, retriever_index=index, reranker_checkpoint=reranker, applications=apps
    )
    wider = {"api": AppSettings(k=60, top_n=5)}
    changed = releases.propose(
        "legal",
        retriever_checkpoint=retriever,
        retriever_index=index,
        reranker_checkpoint=reranker,
        applications=wider,
        note="search",
    )

    assert (first.version, first.change) == (1, "create")
    assert again == first
    assert changed.version == 2 and changed.previous_version == 1 and changed.applications == wider
    assert changed.change.startswith("propose retriever") and changed.note == "search"
    assert [record.version for record in Releases(registry).history("legal")] == [1, 2]


def test_propose_refuses_an_index_of_another_checkpoint(releases: Releases, registry: Registry) -> None:
    _, foreign_index = _retriever(registry)
    retriever, _ = _retriever(registry)

    with pytest.raises(RegistryError, match="not built from retriever checkpoint"):
        releases.propose(
            "legal",
            retriever_checkpoint=retriever,
            retriever_index=foreign_index,
            reranker_checkpoint=_reranker(registry),
        )
    assert releases.names() == []


def _query_side(registry: Registry, document_encoder: str) -> str:
    """A checkpoint of a query-side stage carrying the document tower of checkpoint ``document_encoder``."""
    carried = {"mode": "frozen", "checkpoint": document_encoder}
    return publish(registry, name="retriever/query-side", params={"document_encoder": carried}).id


def test_index_compatible_retrievers_swap_and_roll_back_keeping_the_index(releases: Releases) -> None:
    base, index, _ = _create(releases)
    first, second = _query_side(releases.registry, base), _query_side(releases.registry, base)

    promoted = releases.promote("legal", "retriever", first)  # no index named: the shared one is kept
    assert promoted.retriever == RetrieverSlot(checkpoint=first, index=index)
    assert releases.promote("legal", "retriever", second, index=index).retriever.index == index
    back = releases.rollback("legal", "retriever")
    assert back.retriever == RetrieverSlot(checkpoint=first, index=index)
    proposed = releases.propose(
        "legal", retriever_checkpoint=second, retriever_index=index, reranker_checkpoint=back.reranker.checkpoint
    )
    assert proposed.retriever == RetrieverSlot(checkpoint=second, index=index)


def test_an_index_of_another_document_encoder_is_refused(releases: Releases) -> None:
    _, index, _ = _create(releases)
    other, other_index = _retriever(releases.registry)
    foreign = _query_side(releases.registry, other)

    with pytest.raises(RegistryError, match=f"index {index} was not built from retriever checkpoint {foreign} or"):
        releases.promote("legal", "retriever", foreign, index=index)
    # Without an index named, an incompatible one is not kept: the new retriever serves without one.
    assert releases.promote("legal", "retriever", foreign).retriever == RetrieverSlot(checkpoint=foreign)
    assert releases.promote("legal", "retriever", foreign, index=other_index).retriever.index == other_index
    # A two-tower checkpoint trained its own document tower: the base's index does not serve it.
    trained, _ = _retriever(releases.registry, with_index=False)
    with pytest.raises(RegistryError, match=f"index {index} was not built from retriever checkpoint {trained} "):
        releases.promote("legal", "retriever", trained, index=index)


def test_an_application_at_weight_zero_does_not_call_the_reranker() -> None:
    assert AppSettings(k=20, top_n=10).calls_reranker
    assert not AppSettings(k=20, top_n=10, weight=0.0).calls_reranker
    assert not AppSettings(k=20, top_n=10, rerank=False, weight=0.5).calls_reranker


def test_settings_rechosen_for_the_served_pair_say_what_changed_and_are_written_once(releases: Releases) -> None:
    retriever, _, old = _create(releases)
    new = _reranker(releases.registry)
    promoted = releases.promote("legal", "reranker", new)
    assert promoted.settings_chosen_for is None and promoted.stale_settings() is None  # set by hand: no claim

    settings = {"search": AppSettings(k=20, top_n=10, weight=0.5), "api": AppSettings(k=5, top_n=5, rerank=False)}
    rechosen = releases.set_settings("legal", settings, note="re-chosen")

    assert rechosen.version == promoted.version + 1 and rechosen.applications == settings
    assert (rechosen.retriever, rechosen.reranker) == (promoted.retriever, promoted.reranker)
    assert rechosen.settings_chosen_for.model_dump() == {"retriever": retriever, "reranker": new}
    assert rechosen.change == (
        f"re-choose settings for retriever {retriever}, reranker {new}: "
        "api (none) -> k=5 weight=1 no rerank; search k=100 weight=1 -> k=20 weight=0.5"
    )
    assert releases.set_settings("legal", settings) == rechosen  # nothing new to write
    # Rolling the reranker back leaves settings chosen for the other one, and says so.
    back = releases.rollback("legal", "reranker")
    assert back.reranker.checkpoint == old and f"reranker {new}" in back.stale_settings()


def test_a_release_goes_to_the_store_the_environment_names_now() -> None:
    # A registry URI without an endpoint takes it from AWS_ENDPOINT_URL_S3. When the environment names another store
    # (a second server here), the next release must go there, not to a store an earlier write in this process used.
    for bucket in ("first", "second"):  # moto's servers in one process share their buckets: one bucket each
        with moto_s3(bucket):
            releases = Releases(Registry(f"s3://{bucket}/registry"))
            _create(releases)
            assert [r.version for r in releases.history("legal")] == [1], bucket
