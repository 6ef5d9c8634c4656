"""Imports follow the data: each part of ``platform/backbone`` imports only itself and the layers below it.

The layers are the ones docs/architecture.md draws. Training, selection and serving are siblings: each reads what
the others wrote through the registry, never through an import. A module that imports upward or sideways, or a new
part that no layer names, fails here with the file and line, so the direction is kept by the suite and not by
review alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "platform" / "backbone"

# Lowest first. A part may import its own modules and any part of an earlier layer, nothing else.
LAYERS: list[set[str]] = [
    {"errors", "settings"},
    {"component_name", "metric_names", "model_paths", "progress", "cluster", "ray_runtime"},
    {"recipes", "registry"},
    {"data"},
    {"evaluation", "models"},
    {"training", "selection", "serving"},
    {"pipeline"},
    {"cli"},
]
_LAYER = {part: number for number, parts in enumerate(LAYERS) for part in parts}
# Below, yet not to be imported: metrics are computed without knowing what a recipe is.
NEVER = {("evaluation", "recipes")}


def _part(path: Path) -> str:
    """The part a module belongs to: its sub-package, or its own name for a top-level module."""
    relative = path.relative_to(PACKAGE).parts
    return relative[0] if len(relative) > 1 else Path(relative[0]).stem


def _imports() -> list[tuple[str, str, str]]:
    """(file:line, importing part, imported part) of every ``backbone.*`` import in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue
        where = path.relative_to(PACKAGE.parents[1])
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module]
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for name in names:
                if name.startswith("backbone."):
                    found.append((f"{where}:{node.lineno}", _part(path), name.split(".")[1]))
    return found


IMPORTS = _imports()


def test_the_package_has_imports_to_check() -> None:
    assert len(IMPORTS) > 100, IMPORTS


def test_every_part_has_a_layer() -> None:
    parts = {_part(path) for path in PACKAGE.rglob("*.py") if path.parent != PACKAGE or path.name != "__init__.py"}
    assert parts - set(_LAYER) == set(), "put each new part in a layer of LAYERS (and docs/architecture.md)"


@pytest.mark.parametrize("layer", range(len(LAYERS)), ids=[" ".join(sorted(parts)) for parts in LAYERS])
def test_a_layer_imports_only_itself_and_below(layer: int) -> None:
    upward = [
        f"{where}: {importer} imports {imported}"
        for where, importer, imported in IMPORTS
        if _LAYER.get(importer) == layer
        and imported != importer
        and (_LAYER.get(imported, len(LAYERS)) >= layer or (importer, imported) in NEVER)
    ]
    assert upward == []
