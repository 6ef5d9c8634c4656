"""Recipes: one YAML file that describes a backbone end to end, validated by pydantic."""

from backbone.recipes.components import Component, Reranker, Retriever
from backbone.recipes.inference import Inference
from backbone.recipes.loading import load_recipe, recipe_hash
from backbone.recipes.recipe import (
    Application,
    Dataset,
    Evaluation,
    Recipe,
    Resources,
    Search,
    SelectionSplit,
    Subset,
)
from backbone.recipes.stages import (
    FullFinetune,
    LoraFinetune,
    Negatives,
    QuerySelection,
    RerankerStage,
    RetrieverStage,
    Stage,
    StageData,
)

__all__ = [
    "Application",
    "Component",
    "Dataset",
    "Evaluation",
    "FullFinetune",
    "Inference",
    "LoraFinetune",
    "Negatives",
    "QuerySelection",
    "Recipe",
    "Reranker",
    "RerankerStage",
    "Resources",
    "Retriever",
    "RetrieverStage",
    "Search",
    "SelectionSplit",
    "Stage",
    "StageData",
    "Subset",
    "load_recipe",
    "recipe_hash",
]
