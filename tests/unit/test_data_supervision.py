"""Training pairs: weak (inverse-cloze sentence -> text), labelled (query -> relevant text), and prepared tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backbone.data import (
    LABELLED_PAIRS_SCHEMA,
    WEAK_PAIRS_SCHEMA,
    DatasetBuilder,
    RetrievalDataset,
    for_recipe,
    labelled_pairs,
    prepare_dataset,
    read_table,
    weak_pairs,
)
from backbone.data.readers import Where
from backbone.data.supervision import inverse_cloze_anchor
from backbone.errors import BackboneError
from backbone.recipes import Dataset

D1_TEXT = "为了保护民事主体的合法权益，制定本法。\n\n民事主体在民事活动中的法律地位一律平等。好。"
D4_TEXT = "自然人从事工商业经营，经依法登记，为个体工商户。"


@pytest.fixture
def dataset() -> RetrievalDataset:
    builder = DatasetBuilder()
    where = Where(Path("made-up"), 1)
    builder.add_doc("d1", "民法典第一条", D1_TEXT, where)
    builder.add_doc("d2", "", "Untitled text opens here. Its second sentence is the anchor! Short one.", where)
    builder.add_doc("d3", "  ", "第三条只有一句话。", where)
    builder.add_doc("d4", "刑法第二条", D4_TEXT, where)
    builder.add_query("q1", "问题一", where)
    builder.add_query("q2", "问题二", where)
    builder.add_split("train", where)
    builder.add_split("train-hard", where)
    builder.add_split("dev", where)
    builder.add_judgment("train", "q1", "d4", 2, where)
    builder.add_judgment("train", "q1", "d2", 0, where)
    builder.add_judgment("train", "q2", "d1", 1, where)
    builder.add_judgment("train-hard", "q2", "d3", 1, where)
    builder.add_judgment("dev", "q2", "d4", 1, where)
    return builder.build({"loader": "test", "name": "tiny"})


def test_weak_pairs_are_inverse_cloze_sentences(dataset: RetrievalDataset) -> None:
    pairs = weak_pairs(dataset)
    assert pairs.schema.equals(WEAK_PAIRS_SCHEMA)
    # d1: its only long sentence after the first ("好。" is too short); d2: the one after the opening, Latin
    # split; d3: one sentence without a clause to fall back to, no pair; d4: one sentence, the rest after its
    # opening clause.
    assert pairs.to_pylist() == [
        {"anchor": "民事主体在民事活动中的法律地位一律平等。", "positive": D1_TEXT, "doc_id": "d1"},
        {
            "anchor": "Its second sentence is the anchor!",
            "positive": "Untitled text opens here. Its second sentence is the anchor! Short one.",
            "doc_id": "d2",
        },
        {"anchor": "经依法登记，为个体工商户。", "positive": D4_TEXT, "doc_id": "d4"},
    ]


def test_the_anchor_is_drawn_by_document_id_and_never_the_opening() -> None:
    text = "第一句是开头的内容。第二句的内容比较长。第三句的内容也比较长。第四句的内容同样很长。"
    later = {"第二句的内容比较长。", "第三句的内容也比较长。", "第四句的内容同样很长。"}
    drawn = {doc_id: inverse_cloze_anchor(doc_id, "标题", text) for doc_id in ("a", "b", "c", "d", "e", "f")}
    assert set(drawn.values()) <= later and len(set(drawn.values())) > 1  # seeded by the id: documents differ
    assert drawn == {doc_id: inverse_cloze_anchor(doc_id, "标题", text) for doc_id in drawn}  # and repeat
    # A later sentence that repeats the opening, or the title, is never drawn; nor is a fallback that is the title.
    assert inverse_cloze_anchor("a", "", "合同自成立时生效力。合同自成立时生效力。") is None
    assert inverse_cloze_anchor("a", "民法典第一百条的规定", "依照本法规定。民法典第一百条的规定") is None
    assert inverse_cloze_anchor("a", "", "3.5 percent of the debt is owed by the company") is None


def test_labelled_pairs_keep_relevant_judgments_of_the_split(dataset: RetrievalDataset) -> None:
    pairs = labelled_pairs(dataset)
    assert pairs.schema.equals(LABELLED_PAIRS_SCHEMA)
    assert pairs.to_pylist() == [
        {"query_id": "q1", "doc_id": "d4", "anchor": "问题一", "positive": D4_TEXT, "grade": 2},
        {"query_id": "q2", "doc_id": "d1", "anchor": "问题二", "positive": D1_TEXT, "grade": 1},
    ]
    assert labelled_pairs(dataset, "dev")["doc_id"].to_pylist() == ["d4"]


def test_labelled_pairs_of_an_unknown_split(dataset: RetrievalDataset) -> None:
    with pytest.raises(BackboneError, match="dataset has no split 'test'"):
        labelled_pairs(dataset, "test")


def test_prepare_writes_pairs_of_training_splits_only(tmp_path: Path, dataset: RetrievalDataset) -> None:
    manifest = prepare_dataset(dataset, tmp_path / "tiny", name="tiny")
    assert manifest.counts.tables == {"pairs/weak": 3, "pairs/train": 2, "pairs/train-hard": 1}
    assert read_table(tmp_path / "tiny", "pairs/weak").equals(weak_pairs(dataset))
    assert read_table(tmp_path / "tiny", "pairs/train").equals(labelled_pairs(dataset, "train"))


def test_prepare_with_named_training_splits(tmp_path: Path, dataset: RetrievalDataset) -> None:
    manifest = prepare_dataset(dataset, tmp_path / "tiny", name="tiny", train_splits=["dev"])
    assert sorted(manifest.counts.tables) == ["pairs/dev", "pairs/weak"]


def test_a_new_supervision_version_prepares_the_recipe_dataset_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "beir"
    (source / "qrels").mkdir(parents=True)
    docs = [{"_id": "d1", "title": "T", "text": "The first sentence. The second sentence is longer."}]
    (source / "corpus.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs), encoding="utf-8")
    (source / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "a question"}) + "\n", encoding="utf-8")
    (source / "qrels" / "train.tsv").write_text("q1\td1\t1\n", encoding="utf-8")
    spec = Dataset(loader="beir", source=source, eval_split="train")
    first = for_recipe.build_recipe_dataset(spec, "tiny")
    assert for_recipe.build_recipe_dataset(spec, "tiny") == first
    assert read_table(first, "pairs/weak")["anchor"].to_pylist() == ["The second sentence is longer."]
    monkeypatch.setattr(for_recipe, "SUPERVISION_VERSION", for_recipe.SUPERVISION_VERSION + 1)
    second = for_recipe.build_recipe_dataset(spec, "tiny")
    assert second != first and (second / "manifest.json").is_file()
