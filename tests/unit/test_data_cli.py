"""``backbone data`` commands on small BEIR files: prepare, subset, show, and their user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from backbone.cli.data import app
from backbone.data import load_dataset, read_manifest, read_table
from backbone.errors import BackboneError, DataError

runner = CliRunner()


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    """A BEIR directory with 12 docs and 6 queries: 4 judged in train, 2 in test."""
    root = tmp_path / "minibeir"
    (root / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{n}", "title": f"title {n}", "text": f"text {n}"} for n in range(12)]
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
