"""Where backbone keeps things on this machine, each overridable by an environment variable.

| variable              | default                        | what                                          |
| --------------------- | ------------------------------ | --------------------------------------------- |
| ``BACKBONE_HOME``     | ``~/.cache/backbone``          | parent of the defaults below                  |
| ``BACKBONE_MODELS_DIR`` | ``$BACKBONE_HOME/models``    | local models laid out by Hugging Face id      |
| ``BACKBONE_DATA_DIR`` | ``$BACKBONE_HOME/data``        | local raw datasets (``stard/``, ...) and prepared ones |
| ``BACKBONE_DATASETS_DIR`` | ``$BACKBONE_HOME/datasets`` | prepared datasets that recipes build and reuse |
| ``BACKBONE_REGISTRY`` | ``$BACKBONE_HOME/registry``    | artifact registry root: a path or ``s3://``/``gs://`` URI |

``BACKBONE_MODELS_DIR``'s default is the folder ``../shared/tools/install-models`` fills when given no argument.
"""

from __future__ import annotations

import os
from pathlib import Path


def backbone_home() -> Path:
    """The parent folder of every local default."""
    return Path(os.environ.get("BACKBONE_HOME", Path.home() / ".cache" / "backbone")).expanduser()


def models_dir() -> Path:
    """The local model directory, looked in before any model hub."""
    return Path(os.environ.get("BACKBONE_MODELS_DIR", backbone_home() / "models")).expanduser()


def data_dir() -> Path:
    """The local data directory: raw datasets by name (``stard/``) are looked in before any download."""
    return Path(os.environ.get("BACKBONE_DATA_DIR", backbone_home() / "data")).expanduser()


def registry_uri() -> str:
    """The artifact registry root, as a local path or a filesystem URI that ``pyarrow.fs`` understands."""
    return os.environ.get("BACKBONE_REGISTRY", str(backbone_home() / "registry"))


def datasets_dir() -> Path:
    """Where recipes keep the datasets they prepare (Parquet tables plus manifest), reused across runs."""
    return Path(os.environ.get("BACKBONE_DATASETS_DIR", backbone_home() / "datasets")).expanduser()
