"""``backbone recipe``: validate a recipe and show it as backbone will run it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from backbone.errors import BackboneError
from backbone.model_paths import resolve_model
from backbone.recipes import Recipe, load_recipe, recipe_hash

app = typer.Typer(help="Validate and inspect recipes.", no_args_is_help=True)


@app.command()
def check(
    recipe_file: Annotated[Path, typer.Argument(help="The recipe's YAML file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the resolved recipe as JSON.")] = False,
) -> None:
    """Validate RECIPE_FILE and print it resolved: defaults filled in, paths absolute, models located."""
    recipe = load_recipe(recipe_file)
    resolved = recipe.model_dump(mode="json")
    if as_json:
        typer.echo(json.dumps(resolved, indent=2, ensure_ascii=False))
        return
    typer.echo(f"# {recipe_file}: valid (recipe hash {recipe_hash(recipe)})")
    for component in ("retriever", "reranker"):
        name = getattr(recipe, component).model
        try:
            location = resolve_model(name)
            where = "local folder" if location != name or Path(name).is_absolute() else "model hub (not found locally)"
            typer.echo(f"# {component} model: {name} -> {location} ({where})")
        except BackboneError as err:  # the recipe is valid; where its model is comes later, so warn, don't fail
            typer.echo(f"# {component} model: {name} -> NOT AVAILABLE: {err}")
        typer.echo(f"# {component} stages: {' -> '.join(getattr(recipe, component).stage_names())}")
    space = len(recipe.searched_stages("retriever")) * len(recipe.searched_stages("reranker")) * len(recipe.search.k)
    typer.echo(f"# search space: {space} assignments (retriever stage x reranker stage x K)")
    typer.echo(yaml.safe_dump(resolved, allow_unicode=True, sort_keys=False), nl=False)


@app.command()
def schema() -> None:
    """Print the recipe's JSON schema: every field with its type, default and description."""
    typer.echo(json.dumps(Recipe.model_json_schema(), indent=2, ensure_ascii=False))
