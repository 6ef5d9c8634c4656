"""Releases: named, versioned records of which artifacts serve as the backbone, with their full history.

Layout under the registry root::

    releases/<name>/v000001.json    the first version of release <name>, a ReleaseRecord
    releases/<name>/v000002.json    the next one, ...

Each version is a complete record and is never edited: promoting or rolling back one component appends a
version that copies the other component unchanged, so the history tells what served when, and any earlier
state can be served again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, Self, cast, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from backbone.component_name import ComponentName
from backbone.errors import RegistryError
from backbone.registry.artifact import ArtifactKind, ArtifactManifest
from backbone.registry.corpus_index import check_index_serves
from backbone.registry.store import Registry

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_REFERENCE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*?)(?:@v?(?P<version>\d+))?$")
_VERSION_FILE = re.compile(r"^v(\d{6,})\.json$")
# Each retry follows another writer's success, so running out means heavy contention, not a bug.
_MAX_ATTEMPTS = 50


class RetrieverSlot(BaseModel):
    """The retriever a release serves: a checkpoint and, optionally, an index built with its document encoder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checkpoint: str = Field(description="Id of the retriever's checkpoint artifact.")
    index: str | None = Field(
        default=None,
        description="Id of the index artifact built with that checkpoint's document encoder (by the checkpoint "
        "itself, or by the one whose frozen document tower it carries), if there is one.",
    )


class RerankerSlot(BaseModel):
    """The reranker a release serves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checkpoint: str = Field(description="Id of the reranker's checkpoint artifact.")


class AppSettings(BaseModel):
    """How one application queries the backbone.

    Example:
        >>> AppSettings(k=100, top_n=10, rerank=True).top_n
        10
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(gt=0, description="How many candidates the retriever fetches.")
    top_n: int = Field(gt=0, description="How many results the application gets back.")
    rerank: bool = Field(default=True, description="Whether the reranker reorders the candidates.")
    weight: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Interpolation weight of the reranker's normalised score against the retriever's "
        "(backbone.evaluation.interpolate): 1 is the reranker's order, 0 the retriever's (the reranker is then "
        "not called); unused without rerank.",
    )
    rerank_timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=60,
        description="The reranker's deadline per search of this application, in seconds; past it the retriever's "
        "ranking answers, marked degraded. A search sets it from the application's latency budget, or from the "
        "measured cost of reranking K candidates; None: the gateway's rerank_timeout_s.",
    )
    without_reranker: Literal["retriever", "unavailable"] = Field(
        default="retriever",
        description="What a search answers when the reranker fails, misses its deadline or is busy: retriever: the "
        "retriever's ranking, marked reranked: false and counted as degraded; unavailable: a 503 naming the "
        "reranker (for applications where an unreranked answer is worse than none).",
    )

    @property
    def calls_reranker(self) -> bool:
        """Whether answers go through the reranker: ``rerank`` on and a weight above 0 (at 0 its score is unused).

        Example:
            >>> AppSettings(k=20, top_n=10, weight=0.0).calls_reranker
            False
        """
        return self.rerank and self.weight > 0

    @model_validator(mode="after")
    def _top_n_within_k(self) -> Self:
        if self.top_n > self.k:
            raise ValueError(f"top_n ({self.top_n}) cannot exceed k ({self.k}), the number of candidates fetched")
        return self


class ChosenFor(BaseModel):
    """The pair of checkpoints a search chose the applications' K and weight for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retriever: str = Field(description="Id of the retriever checkpoint the settings were chosen with.")
    reranker: str = Field(description="Id of the reranker checkpoint the settings were chosen with.")


class ReleaseRecord(BaseModel):
    """One version of a release: the whole serving configuration at that point, and what changed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The release's name.", pattern=_NAME.pattern)
    version: int = Field(ge=1, description="Its version, 1 for the first; each change adds one.")
    created_at: AwareDatetime = Field(description="When this version was written (UTC).")
    retriever: RetrieverSlot = Field(description="The retriever this version serves.")
    reranker: RerankerSlot = Field(description="The reranker this version serves.")
    applications: dict[str, AppSettings] = Field(
        default_factory=dict, description="Settings of each application served, by application name."
    )
    settings_chosen_for: ChosenFor | None = Field(
        default=None,
        description="The checkpoints the applications' K and weight were chosen for by a search; None when they "
        "were set by hand. Promotions and rollbacks keep it, so it tells when the settings predate what serves.",
    )
    change: str = Field(description="What this version changed, e.g. 'promote retriever checkpoint-...'.")
    note: str = Field(default="", description="Why, in the words of whoever made the change.")
    previous_version: int | None = Field(description="The version this one was made from; None for the first.")

    def slot(self, component: ComponentName) -> RetrieverSlot | RerankerSlot:
        """What this version serves as ``component``."""
        return self.retriever if component == "retriever" else self.reranker

    def stale_settings(self) -> str | None:
        """A warning if the applications' K and weight were chosen for checkpoints other than those that serve.

        Example:
            >>> releases.promote("legal", "reranker", "checkpoint-new").stale_settings()  # doctest: +SKIP
            "applications api, search keep the K and weight a search chose for reranker checkpoint-old; ..."
        """
        chosen = self.settings_chosen_for
        if chosen is None or not self.applications:
            return None
        changed = [
            f"{component} {getattr(chosen, component)}"
            for component in get_args(ComponentName)
            if getattr(chosen, component) != self.slot(component).checkpoint
        ]
        if not changed:
            return None
        return (
            f"applications {', '.join(sorted(self.applications))} keep the K and weight a search chose for "
            f"{' and '.join(changed)}; release {self.name} v{self.version} serves retriever "
            f"{self.retriever.checkpoint} with reranker {self.reranker.checkpoint}. Choose them for this pair with "
            f"`backbone release rechoose {self.name} --recipe RECIPE`."
        )


class Releases:
    """The releases kept in a registry: create them, read their history, promote and roll back components.

    Writers racing on one release never lose a version: each version file is created exclusively, and a
    writer that finds its version number taken re-reads the release and re-applies its change on top.
    That holds on a local or shared POSIX filesystem and on S3 (a conditional PUT). Other object stores
    (``gs://``) get check-then-write, so there changes to one release need a single writer at a time (e.g. one
    CI job or one operator); artifacts themselves may be published by any number of writers anywhere.

    Args:
        registry: the registry whose root holds the releases, and whose artifacts they name.

    Example:
        >>> releases = Releases(registry)  # doctest: +SKIP
        >>> releases.promote("legal-search", "reranker", "checkpoint-20250301T120000Z-0a1b2c3d")  # doctest: +SKIP
        >>> releases.rollback("legal-search", "reranker").change  # doctest: +SKIP
        'rollback reranker to v1: checkpoint-20250201T090000Z-99aa88bb'
    """

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or Registry()
        self.root = self.registry.root
        # Versions are never edited, so each is read at most once per instance.
        self._records: dict[tuple[str, int], ReleaseRecord] = {}

    def names(self) -> list[str]:
        """The names of every release, sorted."""
        return [info.base_name for info in self.root.list_dir("releases") if _NAME.match(info.base_name)]

    def history(self, name: str) -> list[ReleaseRecord]:
        """Every version of release ``name``, oldest first.

        Raises:
            RegistryError: there is no such release.
        """
        versions = self._versions(name)
        if not versions:
            raise self._unknown(name)
        return [self.get(name, version) for version in versions]

    def current(self, name: str) -> ReleaseRecord:
        """The latest version of release ``name``: what serves now."""
        return self.history(name)[-1]

    def get(self, name: str, version: int) -> ReleaseRecord:
        """Version ``version`` of release ``name``.

        Raises:
            RegistryError: there is no such release or version, or its file is malformed.
        """
        key = (_check_name(name), version)
        if key in self._records:
            return self._records[key]
        data = self.root.read(_version_path(name, version))
        if data is None:
            versions = self._versions(name)
            if not versions:
                raise self._unknown(name)
            raise RegistryError(f"release {name!r} has no version {version} (it has v1 to v{versions[-1]})")
        try:
            record = ReleaseRecord.model_validate_json(data)
        except ValidationError as err:
            raise RegistryError(f"release {name!r} version {version} is malformed: {err}") from err
        if (record.name, record.version) != key:
            raise RegistryError(f"the file of release {name!r} v{version} holds {record.name!r} v{record.version}")
        self._records[key] = record
        return record

    def resolve(self, reference: str) -> ReleaseRecord:
        """The version a reference names: ``NAME`` (its current version) or ``NAME@N`` / ``NAME@vN`` (version N).

        Raises:
            RegistryError: the reference is malformed, or names an unknown release or version.

        Example:
            >>> releases.resolve("stard-mini@1").version  # doctest: +SKIP
            1
        """
        match = _REFERENCE.match(reference)
        if match is None:
            raise RegistryError(f"{reference!r} names no release: use NAME or NAME@VERSION")
        if match["version"] is None:
            return self.current(match["name"])
        return self.get(match["name"], int(match["version"]))

    def create(
        self,
        name: str,
        *,
        retriever_checkpoint: str,
        reranker_checkpoint: str,
        retriever_index: str | None = None,
        applications: dict[str, AppSettings] | None = None,
        note: str = "",
    ) -> ReleaseRecord:
        """Create release ``name`` at version 1.

        Args:
            name: letters, digits, ``.``, ``_`` and ``-``.
            retriever_checkpoint: id of the retriever's checkpoint artifact.
            reranker_checkpoint: id of the reranker's checkpoint artifact.
            retriever_index: id of an index artifact built with the document encoder of ``retriever_checkpoint``,
                if any.
            applications: settings of each application served.
            note: why.

        Raises:
            RegistryError: the release exists, or an artifact is unknown, of the wrong kind, or (the index)
                not built with the retriever checkpoint's document encoder.
        """
        content = self._content(retriever_checkpoint, retriever_index, reranker_checkpoint, applications)

        def change(current: ReleaseRecord | None) -> dict[str, Any]:
            if current is not None:
                raise RegistryError(
                    f"release {name!r} already exists (v{current.version}); promote or roll back its components"
                )
            return {**content, "change": "create"}

        return self._append(name, change, note)

    def propose(
        self,
        name: str,
        *,
        retriever_checkpoint: str,
        reranker_checkpoint: str,
        retriever_index: str | None = None,
        applications: dict[str, AppSettings] | None = None,
        note: str = "",
    ) -> ReleaseRecord:
        """Make release ``name`` serve exactly this: create it, or append a version that replaces everything.

        What a search writes: its candidate backbone and every application's settings, recorded as chosen for
        this pair of checkpoints. If the current version already serves exactly this, nothing is written and it is
        returned.

        Args:
            name: the release.
            retriever_checkpoint: id of the retriever's checkpoint artifact.
            reranker_checkpoint: id of the reranker's checkpoint artifact.
            retriever_index: id of an index artifact built with the document encoder of ``retriever_checkpoint``,
                if any.
            applications: settings of each application served.
            note: why.

        Raises:
            RegistryError: an artifact is unknown, of the wrong kind, or (the index) not built with the checkpoint's
                document encoder.

        Example:
            >>> releases.propose("stard-mini", retriever_checkpoint=r, reranker_checkpoint=s).version  # doctest: +SKIP
            3
        """
        content = self._content(retriever_checkpoint, retriever_index, reranker_checkpoint, applications)
        content["settings_chosen_for"] = ChosenFor(retriever=retriever_checkpoint, reranker=reranker_checkpoint)
        if self._versions(name):
            current = self.current(name)
            if all(getattr(current, field) == value for field, value in content.items()):
                return current

        def change(current: ReleaseRecord | None) -> dict[str, Any]:
            if current is None:
                return {**content, "change": "create"}
            return {**content, "change": f"propose retriever {retriever_checkpoint}, reranker {reranker_checkpoint}"}

        return self._append(name, change, note)

    def promote(
        self, name: str, component: ComponentName, checkpoint: str, *, index: str | None = None, note: str = ""
    ) -> ReleaseRecord:
        """Append a version of release ``name`` that serves ``checkpoint`` as ``component``, the other unchanged.

        Args:
            name: the release.
            component: ``"retriever"`` or ``"reranker"``.
            checkpoint: id of the checkpoint artifact to serve.
            index: for the retriever, id of an index built with the document encoder of ``checkpoint``; none: keep
                the index served now if it was built with that same document encoder (an index-compatible
                retriever swaps only its query encoder), else serve without one.
            note: why.

        Raises:
            RegistryError: the release is unknown, already serves exactly this, or an artifact is unknown, of
                the wrong kind, or (the index) not built with the checkpoint's document encoder.
        """
        _check_component(component)

        def change(current: ReleaseRecord) -> dict[str, Any]:
            kept = index
            if component == "retriever" and index is None and current.retriever.index is not None:
                kept = current.retriever.index if self._index_serves(current.retriever.index, checkpoint) else None
            slot = self._slot(component, checkpoint, kept)
            described = f"{checkpoint} with index {kept}" if kept else checkpoint
            if current.slot(component) == slot:
                raise RegistryError(f"release {name!r} v{current.version} already serves {described} as {component}")
            return _replacing(current, component, slot, f"promote {component} to {described}")

        return self._update(name, change, note)

    def rollback(
        self, name: str, component: ComponentName, *, to_version: int | None = None, note: str = ""
    ) -> ReleaseRecord:
        """Append a version of release ``name`` whose ``component`` is the one an earlier version served.

        The other component stays as it is now.

        Args:
            name: the release.
            component: ``"retriever"`` or ``"reranker"``.
            to_version: the version whose ``component`` to serve again; default, the latest version that
                served a different ``component`` than the current one.
            note: why.

        Raises:
            RegistryError: the release or version is unknown, or there is nothing different to go back to.
        """
        _check_component(component)

        def change(current: ReleaseRecord) -> dict[str, Any]:
            now = current.slot(component)
            if to_version is None:
                earlier = [record for record in self.history(name)[:-1] if record.slot(component) != now]
                if not earlier:
                    raise RegistryError(
                        f"release {name!r} has no earlier {component} to roll back to: "
                        f"every version serves what v{current.version} serves"
                    )
                source = earlier[-1]
            else:
                source = self.get(name, to_version)
                if source.slot(component) == now:
                    raise RegistryError(
                        f"release {name!r} v{current.version} already serves the {component} of v{to_version}"
                    )
            # Checked again: an artifact named by an old version must still be in the registry to serve.
            target = self._slot(component, **source.slot(component).model_dump())
            described = f"rollback {component} to v{source.version}: {target.checkpoint}"
            return _replacing(current, component, target, described)

        return self._update(name, change, note)

    def set_settings(self, name: str, applications: dict[str, AppSettings], *, note: str = "") -> ReleaseRecord:
        """Append a version of release ``name`` whose applications' settings were chosen for the pair it serves.

        What a re-choice of K and weight writes (``backbone release rechoose``): the components stay,
        ``settings_chosen_for`` becomes the served pair. If the current version already has exactly these settings
        chosen for that pair, nothing is written and it is returned.

        Args:
            name: the release.
            applications: every application's settings.
            note: why.

        Raises:
            RegistryError: the release is unknown.
        """
        current = self.current(name)
        chosen = ChosenFor(retriever=current.retriever.checkpoint, reranker=current.reranker.checkpoint)
        if current.applications == applications and current.settings_chosen_for == chosen:
            return current

        def change(current: ReleaseRecord) -> dict[str, Any]:
            changed = [
                f"{app} {_settings_text(current.applications.get(app))} -> {_settings_text(settings)}"
                for app, settings in sorted(applications.items())
                if current.applications.get(app) != settings
            ]
            return {
                "retriever": current.retriever,
                "reranker": current.reranker,
                "applications": applications,
                "settings_chosen_for": chosen,
                "change": f"re-choose settings for retriever {chosen.retriever}, reranker {chosen.reranker}: "
                + ("; ".join(changed) or "unchanged"),
            }

        return self._update(name, change, note)

    def _append(self, name: str, change: Callable[[ReleaseRecord | None], dict[str, Any]], note: str) -> ReleaseRecord:
        """Write the next version of ``name``, built by ``change`` from the current one (``None`` if none).

        A lost race re-reads the release and calls ``change`` again, so no writer's change is built on a
        stale version and none is lost.
        """
        _check_name(name)
        for _ in range(_MAX_ATTEMPTS):
            versions = self._versions(name)
            current = self.get(name, versions[-1]) if versions else None
            record = ReleaseRecord(
                name=name,
                version=current.version + 1 if current else 1,
                created_at=datetime.now(UTC),
                note=note,
                previous_version=current.version if current else None,
                **change(current),
            )
            if self.root.create_exclusive(
                _version_path(name, record.version), record.model_dump_json(indent=2).encode()
            ):
                self._records[(name, record.version)] = record
                return record
        raise RegistryError(f"release {name!r}: {_MAX_ATTEMPTS} other writers got in first; try again")

    def _versions(self, name: str) -> list[int]:
        """The versions release ``name`` has, ascending (none if it does not exist)."""
        found = (_VERSION_FILE.match(info.base_name) for info in self.root.list_dir(f"releases/{_check_name(name)}"))
        return sorted(int(match[1]) for match in found if match)

    def _update(self, name: str, change: Callable[[ReleaseRecord], dict[str, Any]], note: str) -> ReleaseRecord:
        """:meth:`_append` for a change to an existing release."""

        def from_current(current: ReleaseRecord | None) -> dict[str, Any]:
            if current is None:
                raise self._unknown(name)
            return change(current)

        return self._append(name, from_current, note)

    def _unknown(self, name: str) -> RegistryError:
        known = ", ".join(self.names()) or "none"
        return RegistryError(f"no release {name!r} in registry {self.registry.uri} (releases there: {known})")

    def _content(
        self,
        retriever_checkpoint: str,
        retriever_index: str | None,
        reranker_checkpoint: str,
        applications: dict[str, AppSettings] | None,
    ) -> dict[str, Any]:
        """What a whole version serves, its artifacts checked against the registry."""
        return {
            "retriever": self._slot("retriever", retriever_checkpoint, retriever_index),
            "reranker": self._slot("reranker", reranker_checkpoint),
            "applications": applications or {},
        }

    def _slot(
        self, component: ComponentName, checkpoint: str, index: str | None = None
    ) -> RetrieverSlot | RerankerSlot:
        """What to serve as ``component``: ``checkpoint`` (and for the retriever ``index``), checked."""
        if component == "retriever":
            return self._retriever(checkpoint, index)
        if index is not None:
            raise RegistryError("only the retriever has an index; give the reranker none")
        return RerankerSlot(checkpoint=self._require(checkpoint, "reranker checkpoint").id)

    def _retriever(self, checkpoint: str, index: str | None) -> RetrieverSlot:
        """The retriever slot for ``checkpoint`` and ``index``, checked against the registry."""
        manifest = self._require(checkpoint, "retriever checkpoint")
        if index is not None:
            check_index_serves(self._require(index, "retriever index", ArtifactKind.INDEX), manifest)
        return RetrieverSlot(checkpoint=checkpoint, index=index)

    def _index_serves(self, index: str, checkpoint: str) -> bool:
        """Whether ``index`` was built with the document encoder of ``checkpoint`` (both must exist)."""
        try:
            self._retriever(checkpoint, index)
        except RegistryError:
            return False
        return True

    def _require(self, artifact_id: str, role: str, kind: ArtifactKind = ArtifactKind.CHECKPOINT) -> ArtifactManifest:
        """The manifest of ``artifact_id``, which is to serve as ``role`` and so must be a ``kind``."""
        try:
            manifest = self.registry.get(artifact_id)
        except RegistryError as err:
            raise RegistryError(f"{role}: {err}") from err
        if manifest.kind != kind:
            raise RegistryError(f"{role} {artifact_id} is of kind {manifest.kind}, not {kind}")
        return manifest


def _replacing(
    current: ReleaseRecord, component: ComponentName, slot: RetrieverSlot | RerankerSlot, change: str
) -> dict[str, Any]:
    """The content of a version that is ``current`` with ``component`` replaced by ``slot``."""
    content = {
        "retriever": current.retriever,
        "reranker": current.reranker,
        "applications": current.applications,
        "settings_chosen_for": current.settings_chosen_for,
    }
    return {**content, component: slot, "change": change}


def _settings_text(settings: AppSettings | None) -> str:
    if settings is None:
        return "(none)"
    return f"k={settings.k} weight={settings.weight:g}" + ("" if settings.rerank else " no rerank")


def _check_component(component: str) -> ComponentName:
    if component not in get_args(ComponentName):
        raise RegistryError(f"{component!r} is no component: use 'retriever' or 'reranker'")
    return cast(ComponentName, component)


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise RegistryError(f"{name!r} is not a release name: use letters, digits, '.', '_' and '-'")
    return name


def _version_path(name: str, version: int) -> str:
    return f"releases/{_check_name(name)}/v{version:06d}.json"
