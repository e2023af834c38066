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


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN) | _QUESTION_WORDS


_STOP: frozenset[str] | None = None


def tokenize(text: str) -> list[str]:
    global _STOP
    if _STOP is None:
        _STOP = _stopwords()
    words = [w for w in _TOKEN.findall(text.lower()) if w not in _STOP]
    return _stemmer().stemWords(words)
