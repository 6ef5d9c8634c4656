"""How documents and queries become model texts: passage templates, retriever prompts, cutting to tokens."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from transformers import AutoTokenizer
from transformers.utils import logging as transformers_logging

from backbone.models import cut_to_tokens, passage_text, query_prompt, retriever_prompts
from backbone.recipes import Reranker, Retriever


def test_passage_text_fills_the_template() -> None:
    assert passage_text(Retriever(model="m"), "民法典第五十四条", "自然人从事工商业经营。") == (
        "民法典第五十四条\n自然人从事工商业经营。"
    )
    custom = Reranker(model="m", passage_template="《{title}》{text}")
    assert (
        passage_text(custom, "个体工商户条例第二条", "有经营能力的公民") == "《个体工商户条例第二条》有经营能力的公民"
    )


def test_passage_text_drops_the_separator_of_an_empty_title() -> None:
    assert passage_text(Retriever(model="m"), "", "text only") == "text only"


def test_passage_text_leaves_prefixes_to_the_model() -> None:
    spec = Retriever(model="m", passage_prefix="passage: ")
    assert not passage_text(spec, "t", "x").startswith("passage: ")


def test_encoder_query_prompt_is_the_prefix() -> None:
    assert query_prompt(Retriever(model="m", query_prefix="query: ")) == "query: "
    assert query_prompt(Retriever(model="m")) == ""


def test_encoder_ignores_the_instruction() -> None:
    assert query_prompt(Retriever(model="m", query_prefix="query: ", instruction="Find the statute")) == "query: "


def test_decoder_query_prompt_is_qwen3_embedding_style() -> None:
    spec = Retriever(model="m", family="decoder", pooling="last_token", instruction="Find the statute")
    assert query_prompt(spec) == "Instruct: Find the statute\nQuery:"
    with_prefix = spec.model_copy(update={"query_prefix": " "})
    assert query_prompt(with_prefix) == "Instruct: Find the statute\nQuery: "


def test_decoder_without_instruction_reads_only_the_prefix() -> None:
    spec = Retriever(model="m", family="decoder", pooling="last_token", query_prefix="Q: ")
    assert query_prompt(spec) == "Q: "


def test_retriever_prompts_name_both_roles() -> None:
    spec = Retriever(model="m", query_prefix="query: ", passage_prefix="passage: ")
    assert retriever_prompts(spec) == {"query": "query: ", "passage": "passage: ", "document": "passage: "}


@pytest.mark.parametrize("fixture", ["tiny_encoder_dir", "tiny_decoder_dir"])
def test_cut_to_tokens_keeps_a_prefix_of_the_text(fixture: str, request: pytest.FixtureRequest) -> None:
    tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue(fixture))
    texts = ["who can pay the debt of the company", "合同是民事主体之间设立变更终止民事法律关系的协议", "law"]
    limits = [3, 5, 3]
    cut = cut_to_tokens(tokenizer, texts, limits)
    for text, limit, (kept, count) in zip(texts, limits, cut, strict=True):
        assert text.startswith(kept)
        assert count == min(len(tokenizer.tokenize(text)), limit)
        assert len(tokenizer.tokenize(kept)) == count
    assert cut[2] == ("law", 1)


def test_cut_to_tokens_with_no_room_keeps_nothing(tiny_encoder_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    assert cut_to_tokens(tokenizer, ["the law", "the law"], [0, -4]) == [("", 0), ("", 0)]


def test_cutting_an_over_long_text_raises_no_transformers_warning(
    tiny_encoder_dir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The whole text is tokenized on purpose before the cut: transformers must not warn that it exceeds the limit.
    monkeypatch.setattr(transformers_logging.get_logger(), "propagate", True)  # its records reach caplog
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_dir, model_max_length=8)
    with caplog.at_level(logging.WARNING):
        [(cut, kept)] = cut_to_tokens(tokenizer, ["the law " * 20], [3])
        assert kept == 3 and cut == "the law the" and not caplog.records
        tokenizer("the law " * 20)  # the check can fail: the same call without verbose=False does warn
    assert [record.getMessage()[:29] for record in caplog.records] == ["Token indices sequence length"]
