"""BM25 tokenization (bigrams of CJK runs, words for English) and retrieval on small zh and en corpora."""

from __future__ import annotations

import pytest

from backbone.errors import BackboneError
from backbone.evaluation import BM25, detect_language, tokenize

ZH_DOCS = {
    "705": "当事人订立合同，可以采取书面形式、口头形式或者其他形式。",
    "49282": "婚姻家庭受国家保护。实行婚姻自由、一夫一妻、男女平等的婚姻制度。",
    "12": "继承从被继承人死亡时开始。",
    "13": "民间借贷的利率不得超过合同成立时一年期贷款市场报价利率LPR的四倍。",
}
EN_DOCS = {
    "d1": "The statute of limitations for a contract claim is three years.",
    "d2": "Marriage is a union protected by the state.",
    "d3": "An heir inherits the estate when the testator dies.",
}


def test_chinese_bigrams() -> None:
    assert tokenize("中华人民共和国", "zh") == ["中华", "华人", "人民", "民共", "共和", "和国"]


def test_mixed_chinese_latin_and_digits() -> None:
    assert tokenize("民法典第5条ABC", "zh") == ["民法", "法典", "典第", "5", "条", "abc"]


def test_chinese_punctuation_separates_runs() -> None:
    assert tokenize("合同，LPR-4倍。", "zh") == ["合同", "lpr", "4", "倍"]


def test_english_words_without_stopwords() -> None:
    assert tokenize("The Statute of Limitations (3 years)!", "en") == ["statute", "limitations", "3", "years"]


def test_detect_language() -> None:
    assert detect_language(ZH_DOCS.values()) == "zh"
    assert detect_language(EN_DOCS.values()) == "en"
    # Only the sample counts: a long English head decides, whatever follows.
    assert detect_language(["word " * 10, "中文" * 100], sample_chars=50) == "en"


def build(docs: dict[str, str], language: str = "auto") -> BM25:
    return BM25.build(list(docs), list(docs.values()), language=language)


def test_zh_corpus_ranks_the_matching_statute_first() -> None:
    bm25 = build(ZH_DOCS)
    assert bm25.language == "zh"
    run = bm25.search({"q1": "结婚以后婚姻自由吗", "q2": "借钱的利率上限是LPR几倍"}, k=3)
    assert next(iter(run["q1"])) == "49282"
    assert next(iter(run["q2"])) == "13"
    assert list(run["q1"].values()) == sorted(run["q1"].values(), reverse=True)


def test_en_corpus_ranks_the_matching_document_first() -> None:
    bm25 = build(EN_DOCS)
    assert bm25.language == "en"
    run = bm25.search({"q1": "how long is the limitations period for contracts claim"}, k=10)
    assert list(run["q1"]) == ["d1"]  # the only document sharing a word; k beyond the corpus is fine


def test_documents_sharing_no_token_are_not_retrieved() -> None:
    run = build(EN_DOCS).search({"none": "quantum chromodynamics", "stopwords": "the of a", "empty": ""}, k=5)
    assert run == {"none": {}, "stopwords": {}, "empty": {}}


def test_ties_rank_by_document_id_even_at_the_cut() -> None:
    docs = {"c": "same words here", "a": "same words here", "b": "same words here", "z": "other text"}
    bm25 = build(docs, "en")
    assert list(bm25.search({"q": "same words"}, k=2)["q"]) == ["a", "b"]
    assert list(bm25.search({"q": "same words"}, k=10)["q"]) == ["a", "b", "c"]


def test_k1_and_b_are_passed_to_bm25s() -> None:
    docs = {"short": "contract", "long": "contract " + "filler " * 30}
    query = {"q": "contract"}
    normalised = BM25.build(list(docs), list(docs.values()), "en", b=1.0).search(query, k=2)["q"]
    flat = BM25.build(list(docs), list(docs.values()), "en", b=0.0).search(query, k=2)["q"]
    assert normalised["short"] > normalised["long"]
    assert flat["short"] == pytest.approx(flat["long"])


@pytest.mark.parametrize(
    ("doc_ids", "texts", "message"),
    [
        ([], [], "empty corpus"),
        (["d1", "d2"], ["one"], "2 document ids but 1 texts"),
        (["d1", "d1"], ["one", "two"], "duplicate document id 'd1'"),
    ],
)
def test_bad_corpus_is_an_error(doc_ids: list[str], texts: list[str], message: str) -> None:
    with pytest.raises(BackboneError, match=message):
        BM25.build(doc_ids, texts)


def test_k_below_one_is_an_error() -> None:
    with pytest.raises(BackboneError, match="k must be at least 1"):
        build(EN_DOCS).search({"q": "contract"}, k=0)
