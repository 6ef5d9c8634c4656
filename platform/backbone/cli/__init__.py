"""The ``backbone`` command line: one sub-command group per concept, each in its own module."""

from __future__ import annotations

import typer

from backbone.cli import data, recipe, registry, run, serve
from backbone.errors import BackboneError

app = typer.Typer(
    name="backbone",
    help="Build, choose and serve a shared retrieval backbone on Ray.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.add_typer(recipe.app, name="recipe")
app.add_typer(registry.app, name="registry")
app.add_typer(registry.release_app, name="release")
app.command()(run.run)
app.command()(run.train)
app.command()(run.evaluate)
app.command()(run.compare)
app.command()(serve.deploy)
app.command()(serve.status)
app.command()(serve.rollback)


def main() -> None:
    """Entry point of the console script: user errors print one clear line and exit with status 2."""
    try:
        app()
    except BackboneError as err:
        typer.echo(f"error: {err}", err=True)
        raise SystemExit(2) from None
