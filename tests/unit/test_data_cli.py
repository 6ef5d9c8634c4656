"""``backbone data`` commands on small BEIR files: prepare, subset, show, and their user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
import yaml
from typer.testing import CliRunner

from backbone.cli.data import app
from backbone.data import load_dataset, read_manifest, read_table
from backbone.errors import BackboneError, DataError

runner = CliRunner()
MINI_RECIPE = Path(__file__).resolve().parents[2] / "jobs" / "recipes" / "stard-mini.yaml"


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    """A BEIR directory with 12 docs and 6 queries: 4 judged in train, 2 in test."""
    root = tmp_path / "minibeir"
    (root / "qrels").mkdir(parents=True)
    docs = [
        {
            "_id": f"d{n}",
            "title": f"title {n}",
            "text": f"Article {n} opens here. Its second sentence is the pseudo-query.",
        }
        for n in range(12)
    ]
    queries = [{"_id": f"q{n}", "text": f"query {n}"} for n in range(6)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps(query) + "\n" for query in queries))
    header = "query-id\tcorpus-id\tscore\n"
    (root / "qrels" / "train.tsv").write_text(header + "".join(f"q{n}\td{n}\t1\n" for n in range(4)))
    (root / "qrels" / "test.tsv").write_text(header + "q4\td4\t1\nq5\td5\t2\nq5\td6\t0\n")
    return root


def invoke(*args: str | Path) -> str:
    result = runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_and_parameter_has_help() -> None:
    def check(command: click.Command, path: str) -> None:
        assert command.help, path
        for param in command.params:
            assert getattr(param, "help", None), f"{path} {param.name}"
        for name, sub in getattr(command, "commands", {}).items():
            check(sub, f"{path} {name}")

    check(typer.main.get_command(app), "data")
    assert "Usage:" in invoke("prepare", "beir", "--help")


def test_prepare_beir_then_show(tmp_path: Path, beir_dir: Path) -> None:
    (tmp_path / "hard.qrels").write_text("q0 0 d3 1\n")
    output = invoke(
        "prepare",
        "beir",
        "--source",
        beir_dir,
        "--out",
        tmp_path / "out",
        "--trec-qrels",
        f"hard={tmp_path / 'hard.qrels'}",
    )
    assert output.startswith(f"wrote {tmp_path / 'out'}\n")

    manifest = read_manifest(tmp_path / "out")
    assert manifest.name == "minibeir"
    assert sorted(manifest.counts.splits) == ["hard", "test", "train"]
    assert manifest.counts.tables == {"pairs/weak": 12, "pairs/train": 4}

    shown = invoke("show", tmp_path / "out")
    assert "corpus   12 docs" in shown
    lines = shown.splitlines()
    assert [line.split() for line in lines if line.startswith(("split", "test", "train", "hard"))] == [
        ["split", "queries", "judgments"],
        ["hard", "1", "1"],
        ["test", "2", "3"],
        ["train", "4", "4"],
    ]
    assert "  pairs/weak   12 rows" in lines
    assert '"loader": "beir"' in shown


def test_subset(tmp_path: Path, beir_dir: Path) -> None:
    invoke("prepare", "beir", "--source", beir_dir, "--out", tmp_path / "full")
    arguments = ["subset", tmp_path / "full", "--seed", "5", "--queries", "train=2", "--queries", "test=1"]
    invoke(*arguments, "--corpus-size", "6", "--out", tmp_path / "small", "--name", "mini")
    invoke(*arguments, "--corpus-size", "6", "--out", tmp_path / "again")

    small = load_dataset(tmp_path / "small")
    assert small.corpus.num_rows == 6
    assert [len(small.query_ids(split)) for split in small.splits()] == [1, 2]
    assert small.corpus.equals(load_dataset(tmp_path / "again").corpus)
    assert read_manifest(tmp_path / "small").name == "mini"
    assert read_manifest(tmp_path / "again").name == "minibeir-subset"
    assert read_manifest(tmp_path / "small").source["subset"]["seed"] == 5
    assert read_table(tmp_path / "small", "pairs/train").num_rows == 2


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("train", r"--queries expects SPLIT=VALUE, got 'train'"),
        ("train=", r"--queries expects SPLIT=VALUE, got 'train='"),
        ("train=many", r"--queries train=many: N must be a whole number"),
    ],
)
def test_subset_bad_queries_option(tmp_path: Path, option: str, expected: str) -> None:
    with pytest.raises(BackboneError, match=expected):
        invoke("subset", tmp_path, "--out", tmp_path / "small", "--queries", option)


def test_split_named_twice(tmp_path: Path, beir_dir: Path) -> None:
    with pytest.raises(BackboneError, match="--trec-qrels names split 'x' twice"):
        invoke(
            "prepare",
            "beir",
            "--source",
            beir_dir,
            "--out",
            tmp_path / "o",
            "--trec-qrels",
            "x=a",
            "--trec-qrels",
            "x=b",
        )


def test_show_of_a_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a prepared dataset"):
        invoke("show", tmp_path)


def test_user_errors_print_one_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "backbone.cli", "data", "show", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path}: not a prepared dataset: no manifest.json\n"


@pytest.fixture
def aila_dir(beir_dir: Path) -> Path:
    """beir_dir, AILA-like: test.tsv lines 5 and 6 judge docs the corpus lacks, and query q6 is in no split."""
    with (beir_dir / "qrels" / "test.tsv").open("a") as qrels:
        qrels.write("q5\tS58\t1\nq4\tS59\t1\n")
    with (beir_dir / "queries.jsonl").open("a") as queries:
        queries.write(json.dumps({"_id": "q6", "text": "query 6"}) + "\n")
    return beir_dir


def test_prepare_beir_with_unknown_docs_fails_at_the_line_by_default(tmp_path: Path, aila_dir: Path) -> None:
    with pytest.raises(DataError, match=r"qrels/test\.tsv:5: query 'q5' judges unknown doc 'S58'$"):
        invoke("prepare", "beir", "--source", aila_dir, "--out", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_prepare_beir_drops_unknown_docs_and_says_how_many(tmp_path: Path, aila_dir: Path) -> None:
    out = tmp_path / "out"
    output = invoke("prepare", "beir", "--source", aila_dir, "--out", out, "--unknown-judgments", "drop")

    manifest = read_manifest(out)
    assert manifest.source["unknown_judgments"] == "drop"
    assert manifest.source["dropped_judgments"] == {"test": 2, "train": 0}
    assert manifest.counts.queries == 7
    assert manifest.counts.unjudged_queries == 1
    assert manifest.counts.splits["test"].model_dump() == {"queries": 2, "judgments": 3}
    assert load_dataset(out).relevant("test") == {"q4": {"d4": 1}, "q5": {"d5": 2}}

    shown = invoke("show", out)
    assert output == f"wrote {out}\n{shown}"
    lines = shown.splitlines()
    assert "queries  7 (1 without judgments, in no split)" in lines
    assert "dropped  2 judgments of docs not in the corpus (test 2, train 0)" in lines


def test_prepare_beir_fails_when_drop_empties_a_split(tmp_path: Path, beir_dir: Path) -> None:
    (tmp_path / "hard.qrels").write_text("q0 0 S1 1\nq1 0 S2 1\n")
    expected = (
        r"hard\.qrels: split 'hard' has no judged queries \(no judgment with grade > 0\) "
        r"after dropping 2 judgments of unknown docs$"
    )
    with pytest.raises(DataError, match=expected):
        invoke(
            "prepare",
            "beir",
            "--source",
            beir_dir,
            "--out",
            tmp_path / "out",
            "--trec-qrels",
            f"hard={tmp_path / 'hard.qrels'}",
            "--unknown-judgments",
            "drop",
        )
    assert not (tmp_path / "out").exists()


def test_unknown_judgments_takes_error_or_drop(tmp_path: Path, beir_dir: Path) -> None:
    arguments = ["prepare", "beir", "--source", str(beir_dir), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*arguments, "--unknown-judgments", "skip"])
    assert result.exit_code == 2
    assert "'skip' is not one of 'error', 'drop'" in " ".join(result.output.replace("│", " ").split())


def test_a_beir_recipe_passes_its_policy_to_the_loader(
    tmp_path: Path, aila_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKBONE_DATASETS_DIR", str(tmp_path / "datasets"))
    recipe = yaml.safe_load(MINI_RECIPE.read_text(encoding="utf-8"))
    recipe["dataset"] = {"loader": "beir", "source": str(aila_dir), "eval_split": "test", "unknown_judgments": "drop"}
    recipe_file = tmp_path / "aila.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")

    output = invoke("build", recipe_file)
    assert "dropped  2 judgments of docs not in the corpus (test 2, train 0)" in output.splitlines()

    # The default policy is a different prepared dataset, never the dropped one reused.
    recipe["dataset"].pop("unknown_judgments")
    recipe_file.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    with pytest.raises(DataError, match=r"qrels/test\.tsv:5: query 'q5' judges unknown doc 'S58'$"):
        invoke("build", recipe_file)
