"""Tiny random models with real tokenizers, built offline in a second, for tests that are not about quality.

Both are saved with ``save_pretrained`` and load like the real thing: ``SentenceTransformer(dir)``,
``CrossEncoder(dir)``, ``AutoModel.from_pretrained(dir)``. Their tokenizers are trained in memory on synthetic
Chinese and English sentences. Dropout is zero, so two forwards of the same batch are equal (DDP equality tests
rely on it), and weights come from a fixed seed.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Tokenizer,
    Qwen3Config,
    Qwen3ForCausalLM,
)

# Characters of Chinese statutes and lay questions; unseen characters become [UNK] (encoder) or bytes (decoder).
_CHINESE = (
    "中华人民共和国民法典刑法合同婚姻继承劳动公司个体工商户自然人法人组织登记经营财产债务偿还夫妻一方"
    "子女父母责任赔偿损失侵权违约解除终止设立变更权利义务当事人法院判决起诉证据期限规定条款适用可以应当"
    "不得没有是否谁什么怎么如何多少时候因为所以但是如果以及或者依照本条例第一二三四五六七八九十百千万年月日"
)
_ENGLISH = (
    "the a of to in is law court contract person company debt marriage child parent property right duty rule "
    "article statute judge query passage document answer relevant question who can what when how pay owe sue"
)
_SEED = 13
# Both tiny models: 2 layers of width 32 with 2 attention heads.
_SIZE = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


def build_tiny_encoder(directory: Path) -> Path:
    """Save a 2-layer, 32-wide BERT with a WordPiece tokenizer into ``directory`` and return it.

    Args:
        directory: where to save (created if missing).

    Example:
        >>> SentenceTransformer(str(build_tiny_encoder(tmp_path / "enc")))  # doctest: +SKIP
    """
    tokenizer = BertTokenizer().train_new_from_iterator(_sentences(), vocab_size=400)
    config = BertConfig(
        **_SIZE,
        vocab_size=len(tokenizer),
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=tokenizer.pad_token_id,
        # BERT's default 0.02 makes a 32-wide random model score every pair the same to 1e-9: no usable gradient.
        initializer_range=0.3,
    )
    return _save(BertModel, config, tokenizer, directory)


def build_tiny_decoder(directory: Path) -> Path:
    """Save a 2-layer, 32-wide Qwen3 causal LM with a byte-level BPE tokenizer into ``directory`` and return it.

    The vocabulary holds ``yes`` and ``no`` as single tokens (yes/no rerankers score with them) and the ChatML
    markers ``<|im_start|>`` / ``<|im_end|>`` as special tokens; ``<|endoftext|>`` is the EOS and padding token.

    Args:
        directory: where to save (created if missing).

    Example:
        >>> AutoModelForCausalLM.from_pretrained(build_tiny_decoder(tmp_path / "dec"))  # doctest: +SKIP
    """
    tokenizer = Qwen2Tokenizer().train_new_from_iterator(
        _sentences(), vocab_size=600, new_special_tokens=["<|im_start|>", "<|im_end|>"]
    )
    for word in ("yes", "no"):
        if tokenizer.tokenize(word) != [word]:
            raise AssertionError(f"the tiny decoder's vocabulary must hold {word!r} as one token")
    config = Qwen3Config(
        **_SIZE,
        vocab_size=len(tokenizer),
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return _save(Qwen3ForCausalLM, config, tokenizer, directory)


def _save(
    model_class: type[PreTrainedModel], config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase, directory: Path
) -> Path:
    torch.manual_seed(_SEED)
    model_class(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _sentences() -> list[str]:
    """A few hundred synthetic sentences; 'yes' and 'no' recur so that byte-level BPE merges them whole."""
    rng = random.Random(_SEED)
    english = _ENGLISH.split()
    sentences = []
    for _ in range(300):
        sentences.append("".join(rng.choices(_CHINESE, k=rng.randint(6, 24))) + "？")
        sentences.append(" ".join(rng.choices(english, k=rng.randint(4, 12))) + rng.choice(".?"))
        sentences.append(rng.choice(["yes", "no"]))
    return sentences
