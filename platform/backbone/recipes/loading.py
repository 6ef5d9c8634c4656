"""Reading a recipe file: YAML in, a validated :class:`Recipe` out, or one error naming every bad field."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from backbone.errors import RecipeError
from backbone.model_paths import is_path_like
from backbone.recipes.base import FieldError
from backbone.recipes.recipe import Recipe


def load_recipe(path: str | Path) -> Recipe:
    """Load and validate a recipe; relative paths in it are taken relative to the recipe file.

    Args:
        path: the recipe's YAML file.

    Raises:
        RecipeError: naming the file, and for each problem its line, its field and what is wrong, e.g.
            ``stard.yaml:41: reranker.stages[2].loss: unknown loss 'infonce2'; choose one of bce, listwise_ce``.

    Example:
        >>> recipe = load_recipe("jobs/recipes/stard-mini.yaml")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RecipeError(f"{path}: cannot read recipe: {err.strerror or err}") from None
    try:
        raw = yaml.safe_load(text)
        tree = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise RecipeError(f"{where}: not valid YAML: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping with dataset, retriever, reranker, ...")
    _resolve_relative_paths(raw, path.resolve().parent)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as err:
        problems = [_describe(problem, path, tree) for problem in err.errors()]
        raise RecipeError(f"{path}: {len(problems)} problem(s)\n" + "\n".join(problems)) from None


def recipe_hash(recipe: Recipe) -> str:
    """A stable hash of everything the recipe says, recorded in every artifact's lineage."""
    canonical = json.dumps(recipe.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _resolve_relative_paths(raw: dict[str, Any], base: Path) -> None:
    dataset = raw.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("source"), str):
        dataset["source"] = str((base / Path(dataset["source"]).expanduser()).resolve())
    for component in ("retriever", "reranker"):
        spec = raw.get(component)
        if isinstance(spec, dict) and isinstance(spec.get("model"), str) and is_path_like(spec["model"]):
            spec["model"] = str((base / Path(spec["model"]).expanduser()).resolve())


def _describe(problem: ErrorDetails, path: Path, tree: yaml.Node | None) -> str:
    location = problem["loc"]
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
    message = problem["msg"].removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        message = "unknown field (not part of the recipe schema; check its spelling and indentation)"
    elif problem["type"] == "missing":
        message = "required field is missing"
    elif problem["type"] not in ("value_error", "assertion_error"):
        message = f"{message} (got {problem.get('input')!r})"
    error = problem.get("ctx", {}).get("error")
    if isinstance(error, FieldError):
        field = f"{field}.{error.field}" if field else error.field
        message = error.message
    line = _line_of(tree, field)
    where = f"{path.name}:{line}" if line else path.name
    return f"  {where}: {field or '<top>'}: {message}"


def _line_of(tree: yaml.Node | None, field: str) -> int | None:
    """The 1-based line of ``field`` (``a.b[2].c``) in the composed YAML, or of its nearest parent."""
    node, line = tree, None
    for part in field.replace("[", ".[").split("."):
        if not part or node is None:
            continue
        if part.startswith("[") and isinstance(node, yaml.SequenceNode):
            index = int(part[1:-1])
            node = node.value[index] if index < len(node.value) else None
        elif isinstance(node, yaml.MappingNode):
            match = next(((key, value) for key, value in node.value if key.value == part), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
            continue
        else:
            break
        if node is not None:
            line = node.start_mark.line + 1
    return line
