"""What the registry records about an artifact: its kind, id, lineage, metrics, settings and file checksums.

An artifact is an immutable folder of files (an HF/sentence-transformers checkpoint, a vector index, the
outputs of an evaluation run, a report) plus its :class:`ArtifactManifest`. The manifest is the single
source of truth: a folder without one was never published.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, FiniteFloat, field_validator

import backbone
from backbone.errors import RegistryError

# Ids sort by creation time within a kind and are unique without coordination between writers.
_ID_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_ID_PATTERN = re.compile(r"^(?P<kind>[a-z][a-z0-9_]*)-(?P<time>\d{8}T\d{6}Z)-[0-9a-f]{8}$")


class ArtifactKind(StrEnum):
    """What an artifact is; a new kind is one more member here."""

    CHECKPOINT = "checkpoint"
    INDEX = "index"
    RUN = "run"
    REPORT = "report"

    @classmethod
    def parse(cls, value: str) -> ArtifactKind:
        """The kind named ``value``.

        Raises:
            RegistryError: ``value`` names no kind; the message lists the kinds there are.

        Example:
            >>> ArtifactKind.parse("index")
            <ArtifactKind.INDEX: 'index'>
        """
        try:
            return cls(value)
        except ValueError:
            kinds = ", ".join(kind.value for kind in cls)
            raise RegistryError(f"unknown artifact kind {value!r}; kinds are: {kinds}") from None


def new_artifact_id(kind: ArtifactKind, created_at: datetime) -> str:
    """A fresh id for an artifact of ``kind`` created at ``created_at``.

    Args:
        kind: the artifact's kind, which the id starts with.
        created_at: when it was created (UTC).

    Example:
        >>> new_artifact_id(ArtifactKind.INDEX, datetime(2025, 3, 1, 12, tzinfo=UTC))[:22]
        'index-20250301T120000Z'
    """
    return f"{kind.value}-{created_at.strftime(_ID_TIME_FORMAT)}-{secrets.token_hex(4)}"


def check_artifact_id(artifact_id: str) -> str:
    """Return ``artifact_id`` if it has the shape of an artifact id, so it can safely become a path.

    Raises:
        RegistryError: it does not (this also stops ``../`` from escaping the registry root).

    Example:
        >>> check_artifact_id("run-20250301T120000Z-0a1b2c3d")
        'run-20250301T120000Z-0a1b2c3d'
    """
    if not _ID_PATTERN.match(artifact_id):
        raise RegistryError(
            f"{artifact_id!r} is not an artifact id (ids look like checkpoint-20250301T120000Z-0a1b2c3d; "
            "`backbone registry list` shows them)"
        )
    return artifact_id


def artifact_id_time(artifact_id: str) -> datetime | None:
    """When the artifact ``artifact_id`` was created, read from the id, or ``None`` if it is no artifact id.

    Example:
        >>> artifact_id_time("run-20250301T120000Z-0a1b2c3d")
        datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)
    """
    match = _ID_PATTERN.match(artifact_id)
    if match is None:
        return None
    return datetime.strptime(match["time"], _ID_TIME_FORMAT).replace(tzinfo=UTC)


@cache
def code_version() -> str:
    """The version of the code running now: the package version, plus the git commit when there is one.

    A ``+dirty`` suffix marks uncommitted changes. Never fails: outside a git checkout it is the version.

    Example:
        >>> code_version().startswith(backbone.__version__)
        True
    """
    source = Path(backbone.__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=source, capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return backbone.__version__
    dirty = "+dirty" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"{backbone.__version__}+g{commit}{dirty}"


class Lineage(BaseModel):
    """Where an artifact comes from: enough to tell what produced it and to rebuild it.

    Example:
        >>> Lineage(parents=["checkpoint-20250301T120000Z-0a1b2c3d"], code_version="0.1.0").recipe_hash is None
        True
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    parents: list[str] = Field(
        default_factory=list, description="Ids of the artifacts this one was made from (e.g. an index's checkpoint)."
    )
    recipe_hash: str | None = Field(default=None, description="Hash of the recipe that produced it, if any.")
    dataset_checksum: str | None = Field(
        default=None, description="Checksum of the dataset it was trained or evaluated on, if any."
    )
    code_version: str = Field(
        default_factory=code_version, description="Version (and git commit) of the code that produced it."
    )


class FileEntry(BaseModel):
    """The checksum of one stored file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(description="Hex SHA-256 of the file's bytes.", pattern=r"^[0-9a-f]{64}$")
    size: int = Field(description="Size of the file in bytes.", ge=0)


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
"""File endings of pickled objects (``torch.save``, ``pickle``, ``joblib``), refused in every manifest."""


def check_file_path(path: str) -> str:
    """Refuse a path of an artifact's file that could leave its folder, or that names a pickle.

    Raises:
        ValueError: absolute, with an empty, ``.`` or ``..`` part, a backslash or a drive; or a pickle suffix.

    Example:
        >>> check_file_path("1_Pooling/config.json")
        '1_Pooling/config.json'
    """
    parts = path.split("/")
    if path.startswith("/") or "\\" in path or ":" in parts[0] or any(part in ("", ".", "..") for part in parts):
        raise ValueError(
            f"file path {path!r} is not a plain relative path inside the artifact folder "
            "('/' separated, no empty, '.' or '..' part, no backslash or drive)"
        )
    if path.lower().endswith(PICKLE_SUFFIXES):
        raise ValueError(
            f"file {path!r} is a pickle (loading it runs arbitrary code): the registry stores no pickle; "
            "save weights as safetensors (sentence-transformers and transformers do by default)"
        )
    return path


class ArtifactManifest(BaseModel):
    """Everything the registry knows about one published artifact; written once, never changed.

    Example:
        >>> manifest = ArtifactManifest(
        ...     id="run-20250301T120000Z-0a1b2c3d", kind="run", name="eval/stard-dev",
        ...     created_at=datetime(2025, 3, 1, 12, tzinfo=UTC), lineage=Lineage(code_version="0.1.0"))
        >>> manifest.kind, manifest.files
        (<ArtifactKind.RUN: 'run'>, {})
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Unique id, `<kind>-<UTC time>-<8 hex>`.", pattern=_ID_PATTERN.pattern)
    kind: ArtifactKind = Field(description="What the artifact is.")
    name: str = Field(description="Human label, e.g. 'retriever/stage-2-refinement'.", min_length=1)
    created_at: AwareDatetime = Field(description="When it was published (UTC).")
    lineage: Lineage = Field(description="What it was made from.")
    metrics: dict[str, FiniteFloat] = Field(
        default_factory=dict, description="Numbers measured on or for it (finite: JSON has no NaN or infinity)."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="JSON settings it was made with (hyper-parameters, index type, ...)."
    )
    cache_key: str | None = Field(
        default=None, description="Key of the work that produced it, so a repeat of that work can reuse it."
    )
    files: dict[str, FileEntry] = Field(
        default_factory=dict,
        description="Every file, by path relative to the artifact's folder ('/' separated, no '.' or '..' part): "
        "a path that could leave the folder, or a pickle file (PICKLE_SUFFIXES), is refused when the manifest is "
        "written or read.",
    )

    @field_validator("files")
    @classmethod
    def _paths_stay_inside(cls, files: dict[str, FileEntry]) -> dict[str, FileEntry]:
        for path in files:
            check_file_path(path)
        return files
