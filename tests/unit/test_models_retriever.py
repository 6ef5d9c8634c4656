"""The retriever on tiny models: embeddings, prompts, lengths, padding, checkpoints, freezing and a training loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

from backbone.errors import BackboneError
from backbone.models import (
    build_retriever,
    document_tower,
    encode_passages,
    encode_queries,
    has_document_tower,
    load_retriever,
    retriever_features,
)
from backbone.recipes import Retriever

TEXTS = ["谁可以成为个体工商户？", "who can pay the debt of the company?", "合同"]
LONG = "合同是民事主体之间设立变更终止民事法律关系的协议 " * 20


ENCODER = {"query_prefix": "query: ", "passage_prefix": "passage: ", "max_query_length": 12, "max_passage_length": 24}
DECODER = {"family": "decoder", "pooling": "last_token", "instruction": "Find the statute", "max_query_length": 48}


@pytest.fixture
def encoder_spec(tiny_encoder_dir: Path) -> Retriever:
    return Retriever(model=str(tiny_encoder_dir), **ENCODER)


@pytest.fixture
def decoder_spec(tiny_decoder_dir: Path) -> Retriever:
    return Retriever(model=str(tiny_decoder_dir), max_passage_length=32, **DECODER)


@pytest.fixture(params=["encoder_spec", "decoder_spec"])
def spec(request: pytest.FixtureRequest) -> Retriever:
    return request.getfixturevalue(request.param)


def test_embeddings_are_float32_unit_rows(spec: Retriever) -> None:
    model = build_retriever(spec)
    for embeddings in (encode_queries(model, spec, TEXTS), encode_passages(model, spec, [*TEXTS, LONG])):
        assert embeddings.dtype == np.float32
        assert embeddings.shape == (len(embeddings), 32)
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)
    assert encode_queries(model, spec, []).shape == (0, 32)


def test_encodings_are_the_training_features_forwarded(spec: Retriever) -> None:
    model = build_retriever(spec)
    for role, encode in (("query", encode_queries), ("passage", encode_passages)):
        with torch.no_grad():
            forwarded = model(retriever_features(model, spec, [*TEXTS, LONG], role))["sentence_embedding"]
        np.testing.assert_allclose(encode(model, spec, [*TEXTS, LONG], batch_size=2), forwarded.numpy(), atol=1e-6)
        # Many texts go through in chunks of a few batches (for progress lines): the same rows, in input order.
        many = encode(model, spec, [*TEXTS, LONG] * 5, batch_size=2)
        np.testing.assert_allclose(many, np.tile(forwarded.numpy(), (5, 1)), atol=1e-6)


def test_each_role_reads_its_prompt(encoder_spec: Retriever) -> None:
    model = build_retriever(encoder_spec)
    for role, prompt in (("query", "query: "), ("passage", "passage: ")):
        prompt_ids = model.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        input_ids = retriever_features(model, encoder_spec, ["who can pay"], role)["input_ids"][0].tolist()
        assert input_ids[1 : 1 + len(prompt_ids)] == prompt_ids  # after [CLS]
    assert not np.allclose(encode_queries(model, encoder_spec, TEXTS), encode_passages(model, encoder_spec, TEXTS))


def test_decoder_queries_read_the_instruction(decoder_spec: Retriever) -> None:
    model = build_retriever(decoder_spec)
    prompt_ids = model.tokenizer("Instruct: Find the statute\nQuery:", add_special_tokens=False)["input_ids"]
    input_ids = retriever_features(model, decoder_spec, ["who can pay"], "query")["input_ids"][0].tolist()
    assert input_ids[: len(prompt_ids)] == prompt_ids
    assert model.prompts["query"] == "Instruct: Find the statute\nQuery:"


def test_a_prompt_that_fills_max_query_length_is_refused(tiny_decoder_dir: Path) -> None:
    spec = Retriever(model=str(tiny_decoder_dir), **{**DECODER, "instruction": "find the statute " * 8})
    with pytest.raises(BackboneError, match=r"retriever.max_query_length 48 leaves no room for a query after \d+ "):
        build_retriever(spec)


def test_each_role_is_cut_to_its_length(spec: Retriever) -> None:
    model = build_retriever(spec)
    queries = retriever_features(model, spec, [LONG, "law"], "query")
    passages = retriever_features(model, spec, [LONG, "law"], "passage")
    assert queries["attention_mask"].sum(dim=1).tolist()[0] == spec.max_query_length
    assert passages["attention_mask"].sum(dim=1).tolist()[0] == spec.max_passage_length
    assert model.max_seq_length == spec.max_passage_length


def test_decoder_texts_end_with_eos_and_pad(decoder_spec: Retriever) -> None:
    model = build_retriever(decoder_spec)
    tokenizer = model.tokenizer
    assert tokenizer.pad_token is not None
    features = retriever_features(model, decoder_spec, ["who", LONG], "passage")
    for ids, mask in zip(features["input_ids"], features["attention_mask"], strict=True):
        assert ids[mask.bool()][-1].item() == tokenizer.eos_token_id  # kept even when the text is cut


@pytest.mark.parametrize("side", ["left", "right"])
def test_last_token_pooling_ignores_padding(decoder_spec: Retriever, side: str) -> None:
    model = build_retriever(decoder_spec)
    model.tokenizer.padding_side = side
    alone = encode_queries(model, decoder_spec, ["who"])
    padded = encode_queries(model, decoder_spec, ["who", LONG])  # "who" is padded to the long text's length
    np.testing.assert_allclose(padded[0], alone[0], atol=1e-5)


def test_a_saved_retriever_describes_itself(spec: Retriever, tmp_path: Path) -> None:
    spec = spec.model_copy(update={"max_query_length": 100, "max_passage_length": 100})  # plain ST cuts elsewhere
    model = build_retriever(spec)
    model.save(str(tmp_path))
    plain = SentenceTransformer(str(tmp_path))
    np.testing.assert_allclose(plain.encode(TEXTS, prompt_name="query"), encode_queries(model, spec, TEXTS), atol=1e-6)
    np.testing.assert_allclose(plain.encode_document(TEXTS), encode_passages(model, spec, TEXTS), atol=1e-6)
    loaded = load_retriever(str(tmp_path), spec)
    np.testing.assert_allclose(encode_queries(loaded, spec, TEXTS), encode_queries(model, spec, TEXTS), atol=1e-6)


def test_the_unused_pooler_is_frozen(encoder_spec: Retriever, tmp_path: Path) -> None:
    model = build_retriever(encoder_spec)
    transformer = model.transformers_model
    assert not any(parameter.requires_grad for parameter in transformer.pooler.parameters())
    assert transformer.get_input_embeddings().weight.requires_grad
    model.save(str(tmp_path))
    loaded = load_retriever(str(tmp_path), encoder_spec)
    assert not any(parameter.requires_grad for parameter in loaded.transformers_model.pooler.parameters())


def test_freeze_embeddings_freezes_only_the_word_embeddings(spec: Retriever, tmp_path: Path) -> None:
    frozen_spec = spec.model_copy(update={"freeze_embeddings": True})
    model = build_retriever(frozen_spec)
    embeddings = model.transformers_model.get_input_embeddings().weight
    assert not embeddings.requires_grad
    assert any(parameter.requires_grad for parameter in model.parameters())
    model.save(str(tmp_path))
    assert not load_retriever(str(tmp_path), frozen_spec).transformers_model.get_input_embeddings().weight.requires_grad


def test_features_train_with_multiple_negatives_ranking_loss(spec: Retriever) -> None:
    frozen_spec = spec.model_copy(update={"freeze_embeddings": True})
    model = build_retriever(frozen_spec)
    model.train()
    loss = MultipleNegativesRankingLoss(model)
    features = [
        retriever_features(model, frozen_spec, ["谁可以成为个体工商户？", "who can pay?"], "query"),
        retriever_features(model, frozen_spec, ["个体工商户条例第二条", "the company pays its debt"], "passage"),
    ]
    value = loss(features, None)
    value.backward()
    assert torch.isfinite(value)
    gradients = {name: parameter.grad for name, parameter in model.named_parameters()}
    assert all(gradients[name] is None for name, p in model.named_parameters() if not p.requires_grad)
    trained = [grad for name, grad in gradients.items() if grad is not None]
    assert trained
    assert all(torch.isfinite(grad).all() for grad in trained)
    assert any(grad.count_nonzero() for grad in trained)


def test_encoding_leaves_a_training_model_training(encoder_spec: Retriever) -> None:
    model = build_retriever(encoder_spec)
    model.train()
    encode_queries(model, encoder_spec, TEXTS)
    encode_passages(model, encoder_spec, TEXTS)
    assert model.training
    model.eval()
    encode_queries(model, encoder_spec, TEXTS)
    assert not model.training


def _tower_weights(model: SentenceTransformer, tower: str) -> dict[str, torch.Tensor]:
    return {name: weight.clone() for name, weight in model[0].sub_modules[tower][0].auto_model.state_dict().items()}


def test_a_frozen_document_encoder_is_the_base_tower_and_only_queries_train(spec: Retriever) -> None:
    frozen = spec.model_copy(update={"document_encoder": "frozen"})
    model = build_retriever(frozen)
    assert has_document_tower(model) and not has_document_tower(build_retriever(spec))
    base = build_retriever(spec).transformers_model.state_dict()
    for tower in ("query", "document"):
        weights = _tower_weights(model, tower)
        assert weights.keys() == base.keys() and all(torch.equal(weights[name], base[name]) for name in base)
    assert not any(parameter.requires_grad for parameter in document_tower(model).parameters())
    assert any(parameter.requires_grad for parameter in model[0].sub_modules["query"].parameters())
    # Both towers start equal, so the two layouts embed alike until the query tower trains.
    one_tower = build_retriever(spec)
    for encode in (encode_queries, encode_passages):
        np.testing.assert_allclose(encode(model, frozen, TEXTS), encode(one_tower, spec, TEXTS), atol=1e-6)

    model.train()
    with torch.no_grad():
        model[0].sub_modules["query"][0].auto_model.get_input_embeddings().weight.mul_(1.5)  # "trained"
    features = retriever_features(model, frozen, TEXTS, "query")
    model(features)["sentence_embedding"].sum().backward()
    assert all(parameter.grad is None for parameter in document_tower(model).parameters())
    assert not np.allclose(encode_queries(model, frozen, TEXTS), encode_queries(one_tower, spec, TEXTS))
    np.testing.assert_array_equal(encode_passages(model, frozen, TEXTS), encode_passages(one_tower, spec, TEXTS))


def test_a_two_tower_checkpoint_loads_plainly_with_the_project_embeddings(spec: Retriever, tmp_path: Path) -> None:
    frozen = spec.model_copy(update={"document_encoder": "frozen"})
    model = build_retriever(frozen)
    with torch.no_grad():
        model[0].sub_modules["query"][0].auto_model.get_input_embeddings().weight.mul_(1.5)
    model.save(str(tmp_path))
    plain = SentenceTransformer(str(tmp_path))
    texts = [*TEXTS, LONG]  # cut at max_query_length / max_passage_length: each tower keeps its own length
    assert plain.prompts["document"] == plain.prompts["passage"] == frozen.passage_prefix
    np.testing.assert_allclose(plain.encode_query(texts), encode_queries(model, frozen, texts), atol=1e-6)
    np.testing.assert_allclose(plain.encode_document(texts), encode_passages(model, frozen, texts), atol=1e-6)
    loaded = load_retriever(str(tmp_path), frozen)
    assert not any(parameter.requires_grad for parameter in document_tower(loaded).parameters())
    np.testing.assert_array_equal(encode_queries(loaded, frozen, texts), encode_queries(model, frozen, texts))


def test_a_one_tower_checkpoint_loaded_for_a_frozen_recipe_splits_into_equal_towers(
    encoder_spec: Retriever, tmp_path: Path
) -> None:
    build_retriever(encoder_spec).save(str(tmp_path))
    frozen = encoder_spec.model_copy(update={"document_encoder": "frozen"})
    model = load_retriever(str(tmp_path), frozen)
    assert has_document_tower(model)
    query, document = _tower_weights(model, "query"), _tower_weights(model, "document")
    assert all(torch.equal(query[name], document[name]) for name in query)


def test_gradient_checkpointing_keeps_the_gradients(spec: Retriever) -> None:
    grads = []
    for checkpointing in (False, True):
        model = build_retriever(spec.model_copy(update={"gradient_checkpointing": checkpointing}))
        assert model.transformers_model.is_gradient_checkpointing is checkpointing
        model.train()
        torch.manual_seed(0)  # the same dropout masks in both runs
        loss = MultipleNegativesRankingLoss(model)
        features = [retriever_features(model, spec, TEXTS, "query"), retriever_features(model, spec, TEXTS, "passage")]
        loss(features, None).backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    for plain, recomputed in zip(*grads, strict=True):
        torch.testing.assert_close(recomputed, plain, atol=1e-5, rtol=1e-4)
