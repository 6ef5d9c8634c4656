"""Where a model named in a recipe is loaded from: a local folder before any model hub."""

from __future__ import annotations

import os
from pathlib import Path

from backbone import settings
from backbone.errors import BackboneError


def is_path_like(name: str) -> bool:
    """True for names written as paths (``./m``, ``../m``, ``/abs/m``, ``~/m``); others are Hugging Face ids."""
    return name.startswith(("./", "../", "/", "~"))


def resolve_model(name: str, models_dir: Path | None = None) -> str:
    """Return what to pass to ``from_pretrained`` / ``SentenceTransformer`` for ``name``.

    A path is returned as is (made absolute). A Hugging Face id is looked up as ``models_dir/<id>``
    (default: ``$BACKBONE_MODELS_DIR``) and that folder is returned when it exists; otherwise the id itself,
    which the hub client downloads. With ``HF_HUB_OFFLINE=1`` a model that is not local is an error naming both
    places looked in.

    Args:
        name: a Hugging Face id such as ``intfloat/multilingual-e5-small``, or a path.
        models_dir: the local model directory; ``None`` uses the settings.

    Example:
        >>> resolve_model("intfloat/multilingual-e5-small", Path("~/.cache/backbone/models"))  # doctest: +SKIP
        '/root/.cache/backbone/models/intfloat/multilingual-e5-small'
    """
    if is_path_like(name):
        return str(Path(name).expanduser().resolve())
    local = (models_dir or settings.models_dir()) / name
    if local.is_dir():
        return str(local)
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise BackboneError(
            f"model {name!r} is not in the local model directory ({local} does not exist) and HF_HUB_OFFLINE is "
            "set: fill the directory (../shared/tools/install-models DIR) and point BACKBONE_MODELS_DIR at it"
        )
    return name
