"""The vector store seam and its FAISS implementation (exact inner product over normalised vectors)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


def faiss_id(chunk_id: str) -> int:
    """The int64 FAISS id of a chunk: its 16-hex-digit content id, folded into 63 bits."""
    return int(chunk_id, 16) & 0x7FFF_FFFF_FFFF_FFFF


class VectorStore(Protocol):
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def remove(self, ids: np.ndarray) -> int: ...
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...
    def vectors(self, ids: np.ndarray) -> np.ndarray: ...
    def ids(self) -> np.ndarray: ...
    def save(self, path: Path) -> None: ...
    def __len__(self) -> int: ...


def _faiss():  # noqa: ANN202
    try:
        import faiss
    except ImportError:
        from ..errors import AssistantError

        raise AssistantError("faiss is not installed: pip install faiss-cpu") from None
    return faiss


class FaissStore:
    """IndexIDMap2 over IndexFlatIP: exact cosine search on normalised vectors, ids chosen by us."""

    def __init__(self, dimension: int, index: object | None = None) -> None:
        faiss = _faiss()
        self.dimension = dimension
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    @classmethod
    def load(cls, path: Path) -> FaissStore:
        index = _faiss().read_index(str(path))
        return cls(index.d, index)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                     np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if not len(ids):
            return 0
        return int(self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each of shape (len(queries), k); missing results have id -1."""
        k = max(1, min(k, len(self))) if len(self) else 1
        return self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of `ids` (all present), one row each."""
        if not len(ids):
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._index.reconstruct_batch(np.ascontiguousarray(ids, dtype=np.int64))

    def ids(self) -> np.ndarray:
        """The ids of all stored vectors."""
        return _faiss().vector_to_array(self._index.id_map).astype(np.int64)

    def save(self, path: Path) -> None:
        _faiss().write_index(self._index, str(path))

    def __len__(self) -> int:
        return int(self._index.ntotal)
