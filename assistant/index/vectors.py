"""Dense search over segments: exact inner product over a segment's memory-mapped vector parts, or, for a
segment at or above the ANN threshold, a FAISS IVF index trained on a sample of its vectors.

Vectors are L2-normalised, so inner product is cosine. The seam is `SegmentVectors.search`; results of all
segments are merged best first with ties broken by chunk id (postings.top_k), as BM25's are.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .postings import OrderKeys, top_k
from .segment import Segment, fsync_file


def _faiss():  # noqa: ANN202
    try:
        import faiss
    except ImportError:
        from ..errors import AssistantError

        raise AssistantError("faiss is not installed: pip install faiss-cpu") from None
    return faiss


class SegmentVectors(Protocol):
    def search(self, queries: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]: ...  # (rows, scores)


class ExactVectors:
    """Exact search over the vector parts of one segment, deleted rows excluded."""

    def __init__(self, segment: Segment) -> None:
        self.segment = segment

    def search(self, queries: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        mask = self.segment.deleted_mask()
        rows_out: list[list[np.ndarray]] = [[] for _ in queries]
        scores_out: list[list[np.ndarray]] = [[] for _ in queries]
        for prow, pvec in self.segment.parts:
            if not len(prow):
                continue
            sims = np.asarray(pvec) @ queries.T  # (n, m)
            if mask is not None:
                dead = mask[np.asarray(prow)]
                if dead.any():
                    sims[dead] = -np.inf
            kk = min(k, len(prow))
            for qi in range(len(queries)):
                col = sims[:, qi]
                if kk < len(col):  # the top k and every row tied with the k-th: top_k's tie-break decides
                    top = np.flatnonzero(col >= col[np.argpartition(-col, kk - 1)[kk - 1]])
                else:
                    top = np.arange(len(col))
                top = top[np.isfinite(col[top])]
                rows_out[qi].append(np.asarray(prow)[top])
                scores_out[qi].append(col[top])
        return [(np.concatenate(r) if r else _I, np.concatenate(s) if s else _F)
                for r, s in zip(rows_out, scores_out, strict=True)]


REFINE = 200  # candidates an IVF search returns, rescored exactly with the segment's own vectors


class AnnVectors:
    """A FAISS IVF index over all vectors of one segment (ids are rows); deleted rows are filtered out.
    With `refine`, the index proposes that many rows and their exact cosines (from the segment's float32
    vectors) rank them: the codes' rounding no longer decides between near neighbours (bench_scale's 1M
    index, 256 of 4,096 lists probed: recall@10 0.932 by SQ8's scores, 0.956 rescored)."""

    def __init__(self, segment: Segment, path: Path, nprobe: int, refine: int = 0) -> None:
        self.segment = segment
        self.nprobe = nprobe
        self.refine = refine
        # Opened now (so a writer removing the file later cannot take it away), mapped on the first search:
        # opening an index stays the same few milliseconds at any size.
        self._fd = os.open(path, os.O_RDONLY)
        self._index = None
        self._selector = None
        self._lock = threading.Lock()

    def _load(self) -> object:
        with self._lock:
            if self._index is None:
                faiss = _faiss()
                faiss.omp_set_num_threads(1)  # one query at a time: threads only add overhead (bench_ann.py)
                path = f"/proc/self/fd/{self._fd}"
                try:  # mapped, not read (bench_ann.py: 8 ms for 1M vectors, then as fast as from RAM)
                    index = faiss.read_index(path, faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
                except RuntimeError:
                    index = faiss.read_index(path)
                deleted = self.segment.deleted_rows()
                if len(deleted):
                    self._batch = faiss.IDSelectorBatch(len(deleted),
                                                        faiss.swig_ptr(np.ascontiguousarray(deleted, np.int64)))
                    self._selector = faiss.IDSelectorNot(self._batch)
                self._index = index
            return self._index

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    __del__ = close  # a reader that is dropped without close() (an index reloaded) gives its file back

    def search(self, queries: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        index = self._load()
        faiss = _faiss()
        params = faiss.SearchParametersIVF(nprobe=self.nprobe)
        if self._selector is not None:
            params.sel = self._selector
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores, ids = index.search(queries, max(k, self.refine), params=params)
        out = []
        for qi in range(len(queries)):
            ok = ids[qi] >= 0
            rows, sc = ids[qi][ok].astype(np.int64), scores[qi][ok]
            if self.refine and len(rows):
                sc = self.segment.vectors_of(rows) @ queries[qi]
                if len(rows) > k:  # the top k and every row tied with the k-th: top_k's tie-break decides
                    top = np.flatnonzero(sc >= sc[np.argpartition(-sc, k - 1)[k - 1]])
                    rows, sc = rows[top], sc[top]
            out.append((rows, sc))
        return out


def nlist_for(n: int) -> int:
    """IVF lists for `n` vectors: about 4·sqrt(n), a power of two, at least 16 (4,096 at a million)."""
    return max(16, 2 ** round(math.log2(4 * math.sqrt(max(n, 1)))))


def nprobe_for(nlist: int, nprobe: int = 0) -> int:
    """Lists probed: `nprobe` if set, else 3/32 of them and at least 256. Measured recall@10 against exact
    search on the three evaluation sets' questions (every IVF candidate rescored exactly, see REFINE): 116k
    MiniLM vectors of Python and PostgreSQL docs chunks, 1,024 lists, 256 probed: 0.981 (PQ fast-scan),
    0.980 (SQ8); bench_scale.py's 1M index (real MiniLM vectors drawn per text, plus noise), 4,096 lists:
    256 probed 0.951, 384 probed 0.970 (PQ fast-scan), 512 probed 0.950 by SQ8's own scores."""
    return min(nlist, nprobe) if nprobe > 0 else min(nlist, max(256, nlist * 3 // 32))


PQ_MIN_VECTORS = 50_000  # below, IVF-SQ8: 4-bit product quantizers want many vectors to train on


def factory_for(n: int, d: int) -> str:
    """The FAISS index of a segment of `n` vectors of `d` dimensions. From PQ_MIN_VECTORS on, a product
    quantizer of 2 dimensions per 4-bit code with FAISS's fast scan (d/2 bytes a vector, scanned about 2.5x
    faster than SQ8's d bytes; its rounding is undone by REFINE); below, SQ8."""
    nlist = nlist_for(n)
    if n >= PQ_MIN_VECTORS and d % 2 == 0:
        return f"IVF{nlist},PQ{d // 2}x4fs"
    return f"IVF{nlist},SQ8"


def build_ann(folder: Path, tag: str, rows: np.ndarray, vectors: np.ndarray, nprobe: int,
              sample: int = 50_000, seed: int = 0) -> dict[str, Any]:
    """Train the IVF index factory_for says on a sample of `vectors`, add them all with their rows as ids,
    write it. `nprobe` 0: nprobe_for's share of the lists."""
    faiss = _faiss()
    n, d = vectors.shape
    nlist = nlist_for(n)
    nprobe = nprobe_for(nlist, nprobe)
    factory = factory_for(n, d)
    index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(n, size=min(n, max(sample, 40 * nlist)), replace=False))
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # training and adding are batch work
    try:
        index.train(np.ascontiguousarray(vectors[take], dtype=np.float32))
        for s in range(0, n, 100_000):
            index.add_with_ids(np.ascontiguousarray(vectors[s:s + 100_000], dtype=np.float32),
                               np.ascontiguousarray(rows[s:s + 100_000], dtype=np.int64))
    finally:
        faiss.omp_set_num_threads(1)
    path = folder / f"ann-{tag}.faiss"
    faiss.write_index(index, str(path))
    fsync_file(path)
    return {"file": path.name, "factory": factory, "nprobe": int(nprobe), "rows": int(n), "refine": REFINE}


def searcher(segment: Segment) -> SegmentVectors:
    ann = segment.meta.ann
    if ann:
        return AnnVectors(segment, segment.folder / ann["file"], int(ann["nprobe"]), int(ann.get("refine", 0)))
    return ExactVectors(segment)


def dense_search(segments: Sequence[Segment], searchers: Sequence[SegmentVectors], queries: np.ndarray,
                 k: int, order: OrderKeys | None = None) -> list[list[tuple[int, int, float]]]:
    """Per query, the top `k` (segment, row, cosine) over all segments, best first."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    per_query: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in queries]
    for si, (seg, srch) in enumerate(zip(segments, searchers, strict=True)):
        if not seg.parts:
            continue
        for qi, (rows, scores) in enumerate(srch.search(queries, k)):
            per_query[qi].append((np.full(len(rows), si, dtype=np.int32), rows, scores))
    fids = [s.fids() for s in segments]
    return [top_k(found, fids, k, positive=False, order=order) for found in per_query]


_I = np.zeros(0, dtype=np.int64)
_F = np.zeros(0, dtype=np.float32)
