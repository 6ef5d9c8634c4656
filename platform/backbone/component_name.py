"""The name of a backbone component, one spelling for recipes, training, the registry, releases, serving and the CLI.

The component's description in a recipe is a different thing, :class:`backbone.recipes.Component` (a retriever's or
a reranker's model, texts and stages).
"""

from typing import Literal

ComponentName = Literal["retriever", "reranker"]
