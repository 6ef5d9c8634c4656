"""Lexical tokens for BM25: character bigrams for Chinese, lower-cased words for English.

Chinese has no spaces and a word segmenter adds a dependency and its errors; overlapping character bigrams
of each run of CJK ideographs are the standard segmentation-free choice, and the one behind the BM25 figures
quoted for the shared STARD copy. Runs of Latin letters and digits inside Chinese text (``LPR``, ``5``) stay
whole words. English is split into words and loses the short stop-word list bm25s ships (Lucene's), without
stemming: no stemmer is installed, and exact words keep the baseline simple to reproduce.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from bm25s.stopwords import STOPWORDS_EN

Language = Literal["zh", "en"]

# CJK Unified Ideographs, Extension A, Compatibility Ideographs, and Extensions B and beyond. Chinese
# punctuation (、，。《》) is outside these ranges, so it separates runs like a space does.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
# A CJK run, or a run of word characters (letters, digits) that are neither CJK nor '_'.
_ZH_TOKEN = re.compile(f"([{_CJK}]+)|([^\\W_{_CJK}]+)")
_WORD = re.compile(r"[^\W_]+")
_ENGLISH_STOPWORDS = frozenset(STOPWORDS_EN)


def tokenize(text: str, language: Language) -> list[str]:
    """The BM25 tokens of ``text``.

    Args:
        text: a document or a query.
        language: ``"zh"``: overlapping bigrams of each CJK run (a run of one character is that character)
            and lower-cased Latin/digit words; ``"en"``: lower-cased words, English stop words removed.

    Example:
        >>> tokenize("民法典第5条ABC", "zh")
        ['民法', '法典', '典第', '5', '条', 'abc']
        >>> tokenize("The Statute of Limitations", "en")
        ['statute', 'limitations']
    """
    if language == "en":
        return [word for word in _WORD.findall(text.lower()) if word not in _ENGLISH_STOPWORDS]
    tokens: list[str] = []
    for cjk, word in _ZH_TOKEN.findall(text):
        if word:
            tokens.append(word.lower())
        else:
            tokens.extend(cjk[start : start + 2] for start in range(max(len(cjk) - 1, 1)))
    return tokens


def detect_language(texts: Iterable[str], sample_chars: int = 100_000) -> Language:
    """``"zh"`` when most letters of a sample of ``texts`` are CJK ideographs, else ``"en"``.

    Only letters and digits are counted, so punctuation and spaces do not tip the balance.

    Args:
        texts: the corpus; texts are read in order until ``sample_chars`` characters have been seen.
        sample_chars: size of the sample.

    Example:
        >>> detect_language(["合同是民事主体之间设立的协议 (contract)", "LPR"])
        'zh'
    """
    cjk = letters = seen = 0
    for text in texts:
        sample = text[: sample_chars - seen]
        seen += len(sample)
        for cjk_run, word in _ZH_TOKEN.findall(sample):
            cjk += len(cjk_run)
            letters += len(cjk_run) + len(word)
        if seen >= sample_chars:
            break
    return "zh" if cjk * 2 > letters else "en"
