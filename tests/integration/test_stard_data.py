"""The data layer on the real STARD copy: counts, known judgments, the CLI end to end, and a real subset."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from backbone.data import RetrievalDataset, build_subset, load_dataset, load_stard, read_manifest, read_table

pytestmark = pytest.mark.integration

# Figures of the shared copy (see ../shared/data/README.md); only the tests may hard-code them.
TRAIN_QUERIES, DEV_QUERIES, DOCS, TRAIN_JUDGMENTS, DEV_JUDGMENTS = 1235, 154, 55605, 2205, 253
WEAK_PAIRS = 53072  # the articles with an inverse-cloze anchor (data/supervision.py)


@pytest.fixture(scope="module")
def stard(stard_dir: Path) -> RetrievalDataset:
    return load_stard(stard_dir)


@pytest.fixture(scope="module")
def prepared(stard_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """STARD prepared once through the real console script."""
    out = tmp_path_factory.mktemp("prepared") / "stard"
    run_cli("data", "prepare", "stard", "--source", str(stard_dir), "--out", str(out))
    return out


def run_cli(*args: str) -> str:
    result = subprocess.run(["backbone", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_counts(stard: RetrievalDataset) -> None:
    assert stard.splits() == ["dev", "train"]
    assert stard.corpus.num_rows == DOCS
    assert len(stard.query_ids("train")) == TRAIN_QUERIES
    assert len(stard.query_ids("dev")) == DEV_QUERIES
    assert stard.split_judgments("train").num_rows == TRAIN_JUDGMENTS
    assert stard.split_judgments("dev").num_rows == DEV_JUDGMENTS


def test_known_judgments(stard: RetrievalDataset) -> None:
    train = stard.relevant("train")
    assert train["0"] == {"705": 1, "49282": 1}  # query 0 is a train query
    assert "0" not in stard.relevant("dev")
    assert train["347"] == {"25469": 1}
    corpus = dict(zip(stard.corpus["doc_id"].to_pylist(), stard.corpus["title"].to_pylist(), strict=True))
    assert corpus["705"] == "中华人民共和国民法典第五十四条"


def test_judgments_agree_with_the_official_qrels(stard: RetrievalDataset, stard_dir: Path) -> None:
    for split in ("train", "dev"):
        official = set()
        for line in (stard_dir / "example" / f"qrels.{split}.tsv").read_text(encoding="utf-8").splitlines():
            fields = line.split("\t")
            if len(fields) >= 2:
                official.add((fields[0], fields[2] if len(fields) == 4 else fields[1]))
        judged = stard.split_judgments(split)
        assert set(zip(judged["query_id"].to_pylist(), judged["doc_id"].to_pylist(), strict=True)) == official


def test_cli_prepare_and_show(prepared: Path) -> None:
    manifest = read_manifest(prepared)
    assert manifest.counts.corpus == DOCS
    assert manifest.counts.splits["train"].model_dump() == {"queries": TRAIN_QUERIES, "judgments": TRAIN_JUDGMENTS}
    assert manifest.counts.splits["dev"].model_dump() == {"queries": DEV_QUERIES, "judgments": DEV_JUDGMENTS}
    assert manifest.counts.tables == {"pairs/weak": WEAK_PAIRS, "pairs/train": TRAIN_JUDGMENTS}

    shown = run_cli("data", "show", str(prepared))
    assert f"corpus   {DOCS} docs" in shown
    rows = {line.split()[0]: line.split()[1:] for line in shown.splitlines() if line.startswith(("train", "dev"))}
    assert rows == {"train": [str(TRAIN_QUERIES), str(TRAIN_JUDGMENTS)], "dev": [str(DEV_QUERIES), str(DEV_JUDGMENTS)]}

    pairs = read_table(prepared, "pairs/train")
    assert pairs.num_rows == TRAIN_JUDGMENTS
    assert load_dataset(prepared).corpus.num_rows == DOCS


def test_subset_keeps_every_judged_doc(stard: RetrievalDataset) -> None:
    small = build_subset(stard, seed=13, queries={"train": 400, "dev": 100}, corpus_size=5000)
    assert small.corpus.num_rows == 5000
    assert [len(small.query_ids(split)) for split in ("train", "dev")] == [400, 100]
    corpus = set(small.corpus["doc_id"].to_pylist())
    for split in ("train", "dev"):
        full = stard.relevant(split)
        for query_id, relevant in small.relevant(split).items():
            assert relevant == full[query_id]
            assert set(relevant) <= corpus
    again = build_subset(stard, seed=13, queries={"train": 400, "dev": 100}, corpus_size=5000)
    assert again.corpus["doc_id"].equals(small.corpus["doc_id"])
