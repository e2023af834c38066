"""BM25 over chunk texts (bm25s), with English stopwords and Snowball stemming."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import numpy as np

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


class BM25Index:
    """A BM25 index of a fixed list of texts; `search` returns (row, score) best first."""

    def __init__(self, texts: Sequence[str]) -> None:
        import bm25s

        self.size = len(texts)
        self._model = bm25s.BM25()
        corpus = [tokenize(t) or ["\x00"] for t in texts]
        if corpus:
            self._model.index(corpus, show_progress=False)
        self._vocab = self._model.vocab_dict if corpus else {}

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        terms = [t for t in tokenize(query) if t in self._vocab]
        if not terms or not self.size:
            return []
        k = min(k, self.size)
        docs, scores = self._model.retrieve([terms], k=k, show_progress=False, n_threads=0)
        out = [(int(d), float(s)) for d, s in zip(np.asarray(docs)[0], np.asarray(scores)[0], strict=True)]
        return [(d, s) for d, s in out if s > 0]
