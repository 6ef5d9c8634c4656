"""The reranker on tiny models: head and yes/no scoring, truncation, checkpoints, the dead pooler, freezing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer, BertModel

from backbone.errors import BackboneError
from backbone.models import JUDGE_INSTRUCTION, build_reranker, load_reranker, reranker_features, score_pairs
from backbone.recipes import Reranker

QUERIES = ["谁可以成为个体工商户？", "who can pay the debt?", "合同"]
PASSAGES = [
    "个体工商户条例第二条\n有经营能力的公民",
    "the company pays its debt",
    "合同是民事主体之间设立变更终止民事法律关系的协议",
]
LONG = "合同是民事主体之间设立变更终止民事法律关系的协议 " * 20


ENCODER = {"query_prefix": "query: ", "passage_prefix": "passage: ", "max_length": 40, "max_query_length": 12}
# The tiny vocabulary spends about 170 tokens on the yes/no template (a real Qwen3 vocabulary about 70).
DECODER = {"family": "decoder", "scoring": "yes_no", "max_length": 230, "max_query_length": 16}


@pytest.fixture
def encoder_spec(tiny_encoder_dir: Path) -> Reranker:
    return Reranker(model=str(tiny_encoder_dir), **ENCODER)


@pytest.fixture
def decoder_spec(tiny_decoder_dir: Path) -> Reranker:
    return Reranker(model=str(tiny_decoder_dir), **DECODER)


@pytest.fixture
def mean_spec(tiny_encoder_dir: Path) -> Reranker:
    return Reranker(model=str(tiny_encoder_dir), scoring="mean", **ENCODER)


@pytest.fixture(params=["encoder_spec", "mean_spec", "decoder_spec"])
def spec(request: pytest.FixtureRequest) -> Reranker:
    return request.getfixturevalue(request.param)


def test_scores_are_the_forwarded_logits(spec: Reranker) -> None:
    model = build_reranker(spec)
    scores = score_pairs(model, spec, [*QUERIES, LONG], [*PASSAGES, LONG], batch_size=2)
    assert scores.dtype == np.float32
    assert scores.shape == (4,)
    with torch.no_grad():
        forwarded = model(reranker_features(model, spec, [*QUERIES, LONG], [*PASSAGES, LONG]))["scores"]
    np.testing.assert_allclose(scores, forwarded.squeeze(-1).numpy(), atol=1e-5)
    assert len(set(scores.tolist())) == 4
    assert score_pairs(model, spec, [], []).shape == (0,)
    # Many pairs go through in chunks of a few batches (for progress lines): the same scores, in input order.
    queries, passages = [*QUERIES, LONG] * 5, [*PASSAGES, LONG] * 5
    np.testing.assert_allclose(score_pairs(model, spec, queries, passages, batch_size=2), np.tile(scores, 5), atol=1e-5)


def test_yes_no_score_is_the_logit_difference_of_the_language_model(
    decoder_spec: Reranker, tiny_decoder_dir: Path
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_decoder_dir)
    language_model = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir).eval()
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    expected = []
    for query, passage in zip(QUERIES, PASSAGES, strict=True):
        text = (  # Qwen3-Reranker's input, written out by hand
            "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
            'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
            f"<Instruct>: {JUDGE_INSTRUCTION}\n<Query>: {query}\n<Document>: {passage}<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n"
        )
        with torch.no_grad():
            logits = language_model(**tokenizer(text, return_tensors="pt")).logits[0, -1]
        expected.append((logits[yes] - logits[no]).item())
    roomy = decoder_spec.model_copy(update={"max_length": 400, "max_query_length": 100})  # nothing is cut
    model = build_reranker(roomy)
    np.testing.assert_allclose(score_pairs(model, roomy, QUERIES, PASSAGES), expected, atol=1e-5)


def test_encoder_pairs_keep_the_query_and_cut_the_passage(encoder_spec: Reranker) -> None:
    model = build_reranker(encoder_spec)
    tokenizer = model.tokenizer
    features = reranker_features(model, encoder_spec, ["who can pay?", LONG, "合同"], [LONG, LONG, "协议"])
    lengths = features["attention_mask"].sum(dim=1).tolist()
    query_tokens = ((features["token_type_ids"] == 0) & features["attention_mask"].bool()).sum(dim=1) - 2
    assert lengths[:2] == [encoder_spec.max_length] * 2  # passages cut to fill max_length exactly
    assert query_tokens[0] == len(tokenizer.tokenize("query: who can pay?"))  # a short query is kept whole
    assert query_tokens[1] == encoder_spec.max_query_length  # a long one is cut to max_query_length
    assert lengths[2] == len(tokenizer("query: 合同", "passage: 协议")["input_ids"])  # a short pair is not cut


def test_encoder_pairs_read_both_prefixes(encoder_spec: Reranker) -> None:
    model = build_reranker(encoder_spec)
    tokenizer = model.tokenizer
    ids = reranker_features(model, encoder_spec, ["合同"], ["协议"])["input_ids"][0].tolist()
    assert ids == tokenizer("query: 合同", "passage: 协议")["input_ids"]


def test_decoder_pairs_keep_the_template_and_cut_the_passage(decoder_spec: Reranker) -> None:
    model = build_reranker(decoder_spec)
    features = reranker_features(model, decoder_spec, ["who can pay?", LONG], [LONG, LONG])
    assert features["attention_mask"].sum(dim=1).max() <= decoder_spec.max_length
    assert features["attention_mask"][:, -1].all()  # left padding: the last position is real
    rendered = [
        model.tokenizer.decode(ids[mask.bool()])
        for ids, mask in zip(features["input_ids"], features["attention_mask"], strict=True)
    ]
    assert "<Query>: who can pay?\n<Document>: 合同" in rendered[0]
    cut_query = rendered[1].split("<Query>: ")[1].split("\n<Document>: ")[0]
    assert LONG.startswith(cut_query)
    assert len(model.tokenizer.tokenize(cut_query)) <= decoder_spec.max_query_length
    assert all(text.endswith("<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n") for text in rendered)


def test_a_saved_reranker_describes_itself(spec: Reranker, tmp_path: Path) -> None:
    # Limits every pair fits in: a plain predict() truncates differently from the recipe's rule (query first).
    spec = spec.model_copy(update={"max_length": max(spec.max_length, 120), "max_query_length": 32})
    model = build_reranker(spec)
    scores = score_pairs(model, spec, QUERIES, PASSAGES)
    model.save(str(tmp_path))
    prefixed = [
        (spec.query_prefix + query, spec.passage_prefix + passage)
        for query, passage in zip(QUERIES, PASSAGES, strict=True)
    ]
    np.testing.assert_allclose(CrossEncoder(str(tmp_path)).predict(prefixed), scores, atol=1e-5)
    np.testing.assert_allclose(
        score_pairs(load_reranker(str(tmp_path), spec), spec, QUERIES, PASSAGES), scores, atol=1e-5
    )


@pytest.fixture
def dead_pooler_dir(tiny_encoder_dir: Path, tmp_path: Path) -> Path:
    """The tiny encoder with multilingual-e5-small's defect: pooler weights that are all zero."""
    encoder = BertModel.from_pretrained(tiny_encoder_dir)
    with torch.no_grad():
        encoder.pooler.dense.weight.zero_()
        encoder.pooler.dense.bias.zero_()
    encoder.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_encoder_dir).save_pretrained(tmp_path)
    return tmp_path


def body_gradients(model: CrossEncoder, spec: Reranker) -> list[torch.Tensor]:
    """Gradients reaching the encoder layers from one BCE step on two pairs."""
    model.train()
    logits = model(reranker_features(model, spec, QUERIES[:2], PASSAGES[:2]))["scores"].squeeze(-1)
    torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([1.0, 0.0])).backward()
    return [parameter.grad for name, parameter in model.named_parameters() if ".encoder.layer." in name]


def test_a_dead_pooler_is_revived(dead_pooler_dir: Path) -> None:
    spec = Reranker(model=str(dead_pooler_dir))
    untreated = CrossEncoder(str(dead_pooler_dir), num_labels=1)
    assert not any(gradient.count_nonzero() for gradient in body_gradients(untreated, spec))  # dead pooler: no gradient
    model = build_reranker(spec)
    pooler = model.model.bert.pooler.dense
    expected = model.model.config.initializer_range  # the model's own init scale (0.02 for e5-small)
    assert 0.5 * expected < pooler.weight.std().item() < 1.5 * expected
    assert not pooler.bias.count_nonzero()
    assert all(gradient.count_nonzero() for gradient in body_gradients(model, spec))


def test_a_live_pooler_is_kept(encoder_spec: Reranker, tiny_encoder_dir: Path) -> None:
    model = build_reranker(encoder_spec)
    original = BertModel.from_pretrained(tiny_encoder_dir).pooler.dense.weight
    assert torch.equal(model.model.bert.pooler.dense.weight, original)


def test_new_weights_come_from_the_seed(encoder_spec: Reranker) -> None:
    first = score_pairs(build_reranker(encoder_spec), encoder_spec, QUERIES, PASSAGES)
    again = score_pairs(build_reranker(encoder_spec), encoder_spec, QUERIES, PASSAGES)
    other = score_pairs(build_reranker(encoder_spec, seed=1), encoder_spec, QUERIES, PASSAGES)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_the_pooler_under_the_head_trains(encoder_spec: Reranker) -> None:
    model = build_reranker(encoder_spec)
    assert all(parameter.requires_grad for parameter in model.model.bert.pooler.parameters())
    assert model.model.get_input_embeddings().weight.requires_grad


def test_a_mean_reranker_scores_the_mean_token_state_and_its_pooler_never_trains(mean_spec: Reranker) -> None:
    model = build_reranker(mean_spec)
    features = reranker_features(model, mean_spec, QUERIES, PASSAGES)
    with torch.no_grad():
        inputs = {name: features[name] for name in ("input_ids", "attention_mask", "token_type_ids")}
        states = model.model(**inputs)
        mask = features["attention_mask"].unsqueeze(-1).float()
        mean = (states.last_hidden_state * mask).sum(1) / mask.sum(1)
        expected = model[2].linear(mean).squeeze(-1).numpy()
    np.testing.assert_allclose(score_pairs(model, mean_spec, QUERIES, PASSAGES), expected, atol=1e-5)
    assert not any(parameter.requires_grad for parameter in model.model.pooler.parameters())  # DDP: unused
    assert all(gradient.count_nonzero() for gradient in body_gradients(model, mean_spec))


def test_freeze_embeddings_freezes_only_the_word_embeddings(spec: Reranker, tmp_path: Path) -> None:
    frozen_spec = spec.model_copy(update={"freeze_embeddings": True})
    model = build_reranker(frozen_spec)
    assert not model.model.get_input_embeddings().weight.requires_grad
    assert sum(parameter.requires_grad for parameter in model.parameters()) > 1
    model.save(str(tmp_path))
    assert not load_reranker(str(tmp_path), frozen_spec).model.get_input_embeddings().weight.requires_grad


def test_a_template_that_leaves_no_room_is_refused(decoder_spec: Reranker) -> None:
    with pytest.raises(BackboneError, match="leaves no room for a passage"):
        build_reranker(decoder_spec.model_copy(update={"max_length": 150}))


def test_scoring_leaves_a_training_model_training(encoder_spec: Reranker) -> None:
    model = build_reranker(encoder_spec)
    model.train()
    score_pairs(model, encoder_spec, QUERIES, PASSAGES)
    assert model.training


def test_a_reranker_of_the_first_layers_keeps_them_and_loads_plainly(spec: Reranker, tmp_path: Path) -> None:
    base = AutoModel.from_pretrained(spec.model)
    cut = spec.model_copy(update={"layers": 1})
    model = build_reranker(cut)
    body = model.transformers_model.base_model
    layers = body.encoder.layer if hasattr(body, "encoder") else body.layers
    base_layers = base.encoder.layer if hasattr(base, "encoder") else base.layers
    assert model.transformers_model.config.num_hidden_layers == 1 and len(layers) == 1
    assert len(base_layers) == 2
    for name, weight in layers[0].state_dict().items():  # the base model's first layer, untouched
        assert torch.equal(weight, base_layers[0].state_dict()[name]), name

    scores = score_pairs(model, cut, QUERIES, PASSAGES)
    assert not np.allclose(scores, score_pairs(build_reranker(spec), spec, QUERIES, PASSAGES), atol=1e-4)
    model.save_pretrained(str(tmp_path))
    loaded = CrossEncoder(str(tmp_path))
    assert loaded.transformers_model.config.num_hidden_layers == 1
    np.testing.assert_allclose(score_pairs(loaded, cut, QUERIES, PASSAGES), scores, atol=1e-5)


def test_more_layers_than_the_base_model_has_are_refused(encoder_spec: Reranker) -> None:
    with pytest.raises(BackboneError, match=r"reranker\.layers: 3 is more than the 2 layers"):
        build_reranker(encoder_spec.model_copy(update={"layers": 3}))


def test_gradient_checkpointing_keeps_the_gradients(spec: Reranker) -> None:
    grads = []
    for checkpointing in (False, True):
        model = build_reranker(spec.model_copy(update={"gradient_checkpointing": checkpointing}))
        assert model.transformers_model.is_gradient_checkpointing is checkpointing
        torch.manual_seed(0)  # the same dropout masks in both runs
        body_gradients(model, spec)
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    for plain, recomputed in zip(*grads, strict=True):
        torch.testing.assert_close(recomputed, plain, atol=1e-5, rtol=1e-4)
