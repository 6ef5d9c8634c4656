"""How documents and queries become the texts a component's model reads.

A retriever's prefixes and instruction are not glued onto texts: they are the model's prompts (``model.prompts``),
so a saved checkpoint describes itself and ``SentenceTransformer(path).encode(texts, prompt_name="query")`` reads a
query exactly as training did. A reranker's prefixes are put before query and passage when pairs are made (a
``CrossEncoder`` prompt can only prefix the query); a yes/no reranker's template is its tokenizer's chat template.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from backbone.recipes import Component, Retriever

# Qwen3-Reranker's default instruction: a checkpoint of that family reads exactly this.
JUDGE_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"

# A yes/no reranker reads a (query, document) pair rendered Qwen3-Reranker style and answers after the (empty)
# thinking block; its score is logit("yes") - logit("no") at that last position. sentence-transformers maps a
# pair to a 'query' and a 'document' message (content a string or a list of text parts); Jinja drops a
# template's final newline, hence the last expression.
YES_NO_CHAT_TEMPLATE = (
    "{%- macro content(role) -%}"
    "{%- set message = messages | selectattr('role', 'eq', role) | first -%}"
    "{{- message.content if message.content is string else message.content[0].text -}}"
    "{%- endmacro -%}"
    "<|im_start|>system\n"
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
    f"<Instruct>: {JUDGE_INSTRUCTION}\n"
    "<Query>: {{ content('query') }}\n"
    "<Document>: {{ content('document') }}<|im_end|>\n"
    "<|im_start|>assistant\n"
    "<think>\n\n</think>{{ '\\n\\n' }}"
)


def passage_text(spec: Component, title: str, text: str) -> str:
    """A document as the component reads it: the recipe's ``passage_template`` filled in.

    Whitespace an empty title or text leaves at either end is dropped, so a document without a title does not
    start with the template's separator.

    Args:
        spec: the retriever's or reranker's recipe section whose ``passage_template`` shapes the passage.
        title: the document's title (may be empty).
        text: the document's text.

    Example:
        >>> passage_text(Retriever(model="m"), "民法典第五十四条", "自然人从事工商业经营……")
        '民法典第五十四条\\n自然人从事工商业经营……'
    """
    return spec.passage_template.format(title=title, text=text).strip()


def query_prompt(spec: Retriever) -> str:
    """The text put before every query of a retriever.

    An encoder reads ``query_prefix`` (``"query: "`` for e5 models). A decoder with an ``instruction`` reads it
    Qwen3-Embedding style, ``"Instruct: <instruction>\\nQuery:"``, followed by ``query_prefix`` if any.

    Args:
        spec: the retriever recipe.

    Example:
        >>> query_prompt(Retriever(model="m", query_prefix="query: "))
        'query: '
        >>> query_prompt(Retriever(model="m", family="decoder", pooling="last_token", instruction="Find the statute"))
        'Instruct: Find the statute\\nQuery:'
    """
    if spec.family == "decoder" and spec.instruction:
        return f"Instruct: {spec.instruction}\nQuery:{spec.query_prefix}"
    return spec.query_prefix


def retriever_prompts(spec: Retriever) -> dict[str, str]:
    """The retriever's prompts by role, as stored in ``SentenceTransformer.prompts``.

    ``document`` repeats ``passage``: it is the name sentence-transformers' own ``encode_document`` reads.

    Args:
        spec: the retriever recipe.

    Example:
        >>> retriever_prompts(Retriever(model="m", query_prefix="query: ", passage_prefix="passage: "))
        {'query': 'query: ', 'passage': 'passage: ', 'document': 'passage: '}
    """
    return {"query": query_prompt(spec), "passage": spec.passage_prefix, "document": spec.passage_prefix}


def cut_to_tokens(tokenizer: PreTrainedTokenizerBase, texts: list[str], limits: list[int]) -> list[tuple[str, int]]:
    """Each text cut after its first ``limit`` tokens (special tokens not counted), with the tokens it keeps.

    The cut is made at the character offset where the last kept token ends, so what survives is an unaltered
    prefix of the text (decoding token ids back would normalise it). Tokenizing the cut text again gives the
    same count, give or take a token where a byte-level tokenizer splits a character.

    Args:
        tokenizer: a fast tokenizer (it reports character offsets).
        texts: the texts to cut.
        limits: how many tokens to keep of each text (0 or less keeps nothing).

    Example:
        >>> cut_to_tokens(tokenizer, ["the law of contracts", "law"], [2, 2])  # doctest: +SKIP
        [('the law', 2), ('law', 1)]
    """
    if not texts:
        return []  # tokenizers refuse an empty batch
    # Texts longer than the model's limit are tokenized whole on purpose (to be cut here): verbose=False keeps
    # transformers from warning "Token indices sequence length is longer than ..." for each of them.
    encodings = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    cut = []
    for text, offsets, limit in zip(texts, encodings, limits, strict=True):
        if len(offsets) <= limit:
            cut.append((text, len(offsets)))
        elif limit <= 0:
            cut.append(("", 0))
        else:
            cut.append((text[: offsets[limit - 1][1]], limit))
    return cut
