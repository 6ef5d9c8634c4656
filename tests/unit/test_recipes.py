"""Recipe validation: the shipped recipes load, and every kind of mistake is named by file, line and field."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from backbone.errors import BackboneError, RecipeError
from backbone.model_paths import resolve_model
from backbone.recipes import Reranker, load_recipe, recipe_hash

RECIPES = Path(__file__).resolve().parents[2] / "jobs" / "recipes"
MINI = RECIPES / "stard-mini.yaml"


def _write(tmp_path: Path, recipe: dict, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _mini() -> dict:
    return yaml.safe_load(MINI.read_text(encoding="utf-8"))


def _error(path: Path) -> str:
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    return str(caught.value)


@pytest.mark.parametrize("name", ["stard.yaml", "stard-mini.yaml"])
def test_shipped_recipes_load(name: str) -> None:
    recipe = load_recipe(RECIPES / name)
    assert recipe.retriever.stage_names() == ["base", "alignment", "refinement", "calibration"]
    assert recipe.reranker.stage_names() == ["base", "alignment", "refinement", "calibration"]
    assert recipe.retriever.model == "intfloat/multilingual-e5-small"
    assert recipe.reranker.model == "intfloat/multilingual-e5-small"
    # stard.yaml mines (and re-mines) negatives; stard-mini contrasts each query with the whole corpus index.
    expected = {
        "stard.yaml": ("batch", ["in_batch", "mined", "remined"]),
        "stard-mini.yaml": ("corpus", ["in_batch"] * 3),
    }
    contrast, policies = expected[name]
    assert [stage.negatives.policy for stage in recipe.retriever.stages] == policies
    assert {stage.contrast for stage in recipe.retriever.stages} == {contrast}
    assert {app.name for app in recipe.applications} == {"api", "search", "research"}


def test_the_paper_recipe_has_decoder_models_and_a_lora_adapter_on_every_stage() -> None:
    recipe = load_recipe(RECIPES / "stard-qwen3.yaml")
    assert (recipe.retriever.model, recipe.reranker.model) == ("Qwen/Qwen3-Embedding-0.6B", "Qwen/Qwen3-Reranker-0.6B")
    assert (recipe.retriever.family, recipe.retriever.pooling) == ("decoder", "last_token")
    assert (recipe.reranker.family, recipe.reranker.scoring) == ("decoder", "yes_no")
    for component in (recipe.retriever, recipe.reranker):
        assert component.stage_names() == ["base", "alignment", "refinement", "calibration"]
        assert {stage.finetune.method for stage in component.stages} == {"lora"}
    assert recipe.resources.use_gpu is True


def test_shipped_recipes_name_their_command() -> None:
    for path in RECIPES.glob("*.yaml"):
        assert f"backbone recipe check jobs/recipes/{path.name}" in path.read_text(encoding="utf-8")


def test_unknown_loss_names_field_line_and_choices(tmp_path: Path) -> None:
    recipe = _mini()
    recipe["reranker"]["stages"][2]["loss"] = "infonce2"
    path = _write(tmp_path, recipe)
    message = _error(path)
    line = next(
        number for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if "infonce2" in text
    )
    assert f"recipe.yaml:{line}: reranker.stages[2].loss: unknown loss 'infonce2'; choose one of bce, listwise_ce" in (
        message
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    recipe = _mini()
    recipe["retriever"]["stages"][0]["temprature"] = 0.05
    recipe["retriever"]["stages"][1]["negatives"] = {"policy": "mined", "count": 0}
    del recipe["reranker"]["model"]
    message = _error(_write(tmp_path, recipe))
    assert "3 problem(s)" in message
    assert "retriever.stages[0].temprature: unknown field" in message
    assert "retriever.stages[1].negatives.count: policy 'mined' needs count >= 1" in message
    assert "reranker.model: required field is missing" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r["retriever"]["stages"][2].update(name="alignment"), "retriever.stages[2].name: 'alignment'"),
        (lambda r: r["retriever"]["stages"][0].update(name="base"), "retriever.stages[0].name: invalid stage name"),
        (lambda r: r["retriever"].update(family="decoder"), "retriever.pooling: a decoder retriever needs"),
        (
            lambda r: r["retriever"].update(
                family="decoder", pooling="last_token", instruction="Instruct: Find the statute\nQuery:"
            ),
            "retriever.instruction: give the task description alone",
        ),
        (lambda r: r["reranker"].update(scoring="yes_no"), "reranker.scoring: an encoder reranker scores with 'head'"),
        (lambda r: r["reranker"].update(max_query_length=500), "reranker.max_query_length: 500 leaves no room"),
        (lambda r: r["retriever"]["stages"][0]["negatives"].update(count=2), "stages[0].negatives.count: must be 0"),
        (
            lambda r: r["reranker"]["stages"][0]["negatives"].update(policy="in_batch", count=0),
            "reranker.stages[0].negatives.count: a reranker with policy 'in_batch' needs count >= 1",
        ),
        (lambda r: r["retriever"]["stages"][1]["negatives"].update(rank_range=[50, 3]), "negatives.rank_range"),
        (lambda r: r["search"].update(retriever_stages=["base", "stage9"]), "search.retriever_stages[1]: unknown"),
        (lambda r: r["search"].update(objective="ndcg@20"), "search.objective: 'ndcg@20' is not among"),
        (lambda r: r["search"].update(objective="bleu@10"), "search.objective: unknown metric 'bleu@10'"),
        (lambda r: r["search"].update(k=[60, 20]), "search.k: needs distinct positive budgets"),
        (lambda r: r["applications"][0].update(k_range=[500, 900]), "applications[0].k_range: [500, 900]"),
        (lambda r: r["applications"][1].update(name="api"), "applications[1].name: 'api' is used twice"),
        (lambda r: r["applications"][0].pop("k_range"), "applications[0]: give k_range, latency_budget_ms"),
        (lambda r: r["dataset"]["subset"]["queries"].pop("dev"), "dataset.subset.queries: names no count"),
        (lambda r: r["dataset"].update(loader="beir"), "dataset.source: a beir dataset needs a local directory"),
        (
            lambda r: r["dataset"].update(unknown_judgments="drop"),
            "dataset.unknown_judgments: only the beir loader can drop judgments, not stard",
        ),
        (lambda r: r["dataset"].update(unknown_judgments="skip"), "dataset.unknown_judgments: Input should be"),
        (lambda r: r["dataset"].update(selection={"split": "dev", "queries": 5}), "dataset.selection.split: 'dev'"),
        (
            lambda r: r["dataset"].update(selection={"queries": 400}),
            "dataset.selection.queries: 400 would leave no training query: the subset keeps 400",
        ),
        (lambda r: r["dataset"].update(selection={"split": "a/b", "queries": 5}), "bad split name 'a/b'"),
        (lambda r: r["search"].update(weights=[1.0, 0.5]), "search.weights: needs distinct weights in [0, 1]"),
        (lambda r: r["search"].update(weights=[0.0, 1.5]), "search.weights: needs distinct weights in [0, 1]"),
        (lambda r: r["retriever"].update(passage_template="{body}"), "retriever.passage_template"),
        (lambda r: r["reranker"]["stages"][0].update(finetune={"method": "lora", "rank": 0}), "finetune.lora.rank"),
        (lambda r: r["resources"].update(workers=0), "resources.workers: Input should be greater than or equal"),
        (
            lambda r: (
                r["retriever"].update(document_encoder="trained"),
                r["retriever"]["stages"][0].update(contrast="corpus"),
            ),
            "retriever.stages[0].contrast: 'corpus' scores queries against the shared corpus index, which needs "
            "document_encoder: frozen (got 'trained')",
        ),
        (
            lambda r: r["retriever"]["stages"][1].update(contrast="corpus", negatives={"policy": "mined", "count": 3}),
            "retriever.stages[1].negatives.policy: must be 'in_batch' with contrast 'corpus' (got 'mined')",
        ),
        (lambda r: r["reranker"].update(layers=0), "reranker.layers: Input should be greater than or equal to 1"),
        (lambda r: r["reranker"].update(candidates="dense"), "reranker.candidates: Input should be 'bm25'"),
        (
            lambda r: r["reranker"].update(candidates="bm25"),
            "reranker.stages[0].loss: distill_kl learns the retriever's scores over the retriever's candidate lists",
        ),
        (
            lambda r: r["reranker"]["stages"][1].update(teacher_temperature=0.1),
            "reranker.stages[1].teacher_temperature: only loss 'distill_kl' reads it",
        ),
    ],
)
def test_mistakes_name_their_field(tmp_path: Path, change, expected: str) -> None:
    recipe = _mini()
    change(recipe)
    assert expected in _error(_write(tmp_path, recipe))


def test_unknown_judgments_default_to_error() -> None:
    assert load_recipe(MINI).dataset.unknown_judgments == "error"


def test_selection_split_and_weights_default_to_the_old_behaviour(tmp_path: Path) -> None:
    raw = _mini()
    raw["dataset"].pop("selection")
    raw["search"].pop("weights")
    recipe = load_recipe(_write(tmp_path, raw))
    assert recipe.dataset.selection is None and recipe.dataset.choice_split() == "dev"
    assert recipe.search.weights == [1.0]
    raw = _mini()
    raw["dataset"]["selection"] = {"queries": 30, "seed": 4}
    raw["search"]["weights"] = [0.0, 0.5, 1.0]
    recipe = load_recipe(_write(tmp_path, raw))
    assert recipe.dataset.choice_split() == "selection" and recipe.dataset.selection.seed == 4
    assert recipe.search.weights == [0.0, 0.5, 1.0]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ndataset:\n  loader: stard\n   source: [\n", encoding="utf-8")
    assert _error(path).startswith("broken.yaml".join([str(tmp_path) + "/", ":4: not valid YAML"]))


def test_missing_and_non_mapping_files(tmp_path: Path) -> None:
    assert "cannot read recipe" in _error(tmp_path / "absent.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n", encoding="utf-8")
    assert "a recipe is a YAML mapping" in _error(listing)


def test_paths_are_relative_to_the_recipe_file(tmp_path: Path) -> None:
    recipe = _mini()
    recipe["dataset"]["source"] = "../raw/stard"
    recipe["retriever"]["model"] = "./models/my-retriever"
    nested = tmp_path / "recipes"
    nested.mkdir()
    loaded = load_recipe(_write(nested, recipe))
    assert loaded.dataset.source == (tmp_path / "raw" / "stard").resolve()
    assert loaded.retriever.model == str((nested / "models" / "my-retriever").resolve())
    assert loaded.reranker.model == "intfloat/multilingual-e5-small"


def test_recipe_hash_is_stable_and_tracks_content(tmp_path: Path) -> None:
    first = recipe_hash(load_recipe(MINI))
    assert first == recipe_hash(load_recipe(MINI))
    recipe = _mini()
    recipe["retriever"]["stages"][0]["learning_rate"] = 1.0e-4
    assert recipe_hash(load_recipe(_write(tmp_path, recipe))) != first


def test_models_resolve_to_the_local_directory_before_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    local = tmp_path / "intfloat" / "multilingual-e5-small"
    local.mkdir(parents=True)
    assert resolve_model("intfloat/multilingual-e5-small", tmp_path) == str(local)
    assert resolve_model("intfloat/other-model", tmp_path) == "intfloat/other-model"
    assert resolve_model(str(local), Path("/nonexistent")) == str(local)


def test_cli_check_accepts_shipped_and_rejects_broken(tmp_path: Path) -> None:
    ok = subprocess.run(["backbone", "recipe", "check", str(MINI)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "valid (recipe hash" in ok.stdout
    assert "retriever stages: base -> alignment -> refinement -> calibration" in ok.stdout
    assert "search space: 48 assignments" in ok.stdout

    offline = {**os.environ, "HF_HUB_OFFLINE": "1", "BACKBONE_MODELS_DIR": str(tmp_path / "no-models")}
    missing = subprocess.run(
        ["backbone", "recipe", "check", str(MINI)], capture_output=True, text=True, check=False, env=offline
    )
    assert missing.returncode == 0, missing.stderr
    assert "retriever model: intfloat/multilingual-e5-small -> NOT AVAILABLE" in missing.stdout

    recipe = _mini()
    recipe["reranker"]["stages"][2]["loss"] = "infonce2"
    bad = subprocess.run(
        ["backbone", "recipe", "check", str(_write(tmp_path, recipe))], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2
    assert "reranker.stages[2].loss: unknown loss 'infonce2'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_an_offline_machine_names_where_it_looked_for_a_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError, match=r"not in the local model directory .* BACKBONE_MODELS_DIR"):
        resolve_model("intfloat/other-model", tmp_path)


def test_a_reranker_distilled_from_the_retrievers_lists_validates(tmp_path: Path) -> None:
    recipe = _mini()
    recipe["reranker"].update(candidates="retriever", layers=6)
    recipe["reranker"]["stages"][0].update(loss="distill_kl", teacher_temperature=0.02, ce_weight=0.1)
    loaded = load_recipe(_write(tmp_path, recipe))
    assert (loaded.reranker.candidates, loaded.reranker.layers) == ("retriever", 6)
    assert (loaded.reranker.stages[0].teacher_temperature, loaded.reranker.stages[0].ce_weight) == (0.02, 0.1)
    shipped = load_recipe(MINI).reranker
    assert (shipped.candidates, shipped.layers, shipped.stages[0].ce_weight) == ("retriever", 4, 0.3)
    defaults = Reranker(model="m")
    assert (defaults.candidates, defaults.layers) == ("bm25", None)
