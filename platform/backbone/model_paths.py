"""Where a model named in a recipe is loaded from: a local folder before any model hub."""

from __future__ import annotations

from pathlib import Path

from backbone import settings


def is_path_like(name: str) -> bool:
    """True for names written as paths (``./m``, ``../m``, ``/abs/m``, ``~/m``); others are Hugging Face ids."""
    return name.startswith(("./", "../", "/", "~"))


def resolve_model(name: str, models_dir: Path | None = None) -> str:
    """Return what to pass to ``from_pretrained`` / ``SentenceTransformer`` for ``name``.

    A path is returned as is (made absolute). A Hugging Face id is looked up as ``models_dir/<id>``
    (default: ``$BACKBONE_MODELS_DIR``) and that folder is returned when it exists; otherwise the id itself,
    which the hub client downloads (and fails on clearly when offline).

    Args:
        name: a Hugging Face id such as ``intfloat/multilingual-e5-small``, or a path.
        models_dir: the local model directory; ``None`` uses the settings.

    Example:
        >>> resolve_model("intfloat/multilingual-e5-small", Path("/nonexistent"))
        'intfloat/multilingual-e5-small'
    """
    if is_path_like(name):
        return str(Path(name).expanduser().resolve())
    local = (models_dir or settings.models_dir()) / name
    return str(local) if local.is_dir() else name
