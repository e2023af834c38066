"""The words BM25 indexes: lowercase word tokens without English stopwords and question words, Snowball-stemmed."""

from __future__ import annotations

import re
import threading

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_local = threading.local()


def _stemmer():  # noqa: ANN202  (PyStemmer objects are not shared between threads)
    st = getattr(_local, "stemmer", None)
    if st is None:
        import Stemmer

        st = _local.stemmer = Stemmer.Stemmer("english")
    return st


# Question words and auxiliaries carry no topic: "What does X do?" should match on X alone.
_QUESTION_WORDS = frozenset(
    [
        "what",
        "who",
        "whom",
        "whose",
        "which",
        "when",
        "where",
        "why",
        "how",
        "does",
        "do",
        "did",
        "doing",
        "done",
        "can",
        "could",
        "would",
        "should",
        "shall",
        "may",
        "might",
        "must",
        "will",
        "has",
        "have",
        "had",
        "having",
        "get",
        "gets",
        "got",
    ]
)


# bm25s's English stopwords (bm25s.stopwords.STOPWORDS_EN, Lucene's list), kept here so that tokenizing
# does not import bm25s (150 ms); tests/test_segments.py checks BM25 against bm25s itself.
_STOPWORDS_EN = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split())
_STOP = _STOPWORDS_EN | _QUESTION_WORDS


def tokenize(text: str) -> list[str]:
    words = [w for w in _TOKEN.findall(text.lower()) if w not in _STOP]
    return _stemmer().stemWords(words)
