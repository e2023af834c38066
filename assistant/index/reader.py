"""Open the live generation of an index: the manifest checked, its segments' files opened and mapped.

Opening reads nothing per chunk or per document: chunk and document texts are read from the segments'
SQLite files when a query needs them, and the documents of one reader are cached (bounded) since a reader
is an immutable snapshot of one generation.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..records import Chunk, Document
from . import layout, postings
from .manifest import Manifest
from .segment import Segment
from .vectors import SegmentVectors, dense_search, searcher

Key = int  # a chunk of a reader: segment position << 32 | row
DOC_CACHE_CHARS = 64 * 1024 * 1024


def key_of(segment: int, row: int) -> Key:
    return (segment << 32) | row


def split_key(key: Key) -> tuple[int, int]:
    return key >> 32, key & 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class DocInfo:
    path: str
    title: str
    chunks: int
    indexed_at: str
    size: int = 0  # bytes of the file when it was indexed


class _Documents(Mapping[str, Document]):
    """The live documents of a reader by path, read on demand and cached (bounded by their text size)."""

    def __init__(self, reader: IndexReader) -> None:
        self._reader = reader
        self._cache: OrderedDict[str, Document] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def __getitem__(self, path: str) -> Document:
        with self._lock:
            doc = self._cache.get(path)
            if doc is not None:
                self._cache.move_to_end(path)
                return doc
        doc = self._reader.find_document(path)
        if doc is None:
            raise KeyError(path)
        with self._lock:
            if path not in self._cache:
                self._cache[path] = doc
                self._chars += len(doc.text)
                while self._chars > DOC_CACHE_CHARS and len(self._cache) > 1:
                    _, old = self._cache.popitem(last=False)
                    self._chars -= len(old.text)
        return doc

    def __iter__(self) -> Iterator[str]:
        return iter([d.path for d in self._reader.doc_infos])

    def __len__(self) -> int:
        return self._reader.manifest.documents


class _Texts(Mapping[str, str]):
    def __init__(self, docs: _Documents) -> None:
        self._docs = docs

    def __getitem__(self, path: str) -> str:
        return self._docs[path].text

    def __iter__(self) -> Iterator[str]:
        return iter(self._docs)

    def __len__(self) -> int:
        return len(self._docs)


class IndexReader:
    """An immutable snapshot of one generation; safe to share between threads."""

    def __init__(self, path: Path, manifest: Manifest, segments: Sequence[Segment]) -> None:
        self.path = path
        self.manifest = manifest
        self.segments = tuple(segments)
        self._searchers: tuple[SegmentVectors, ...] = tuple(searcher(s) for s in self.segments)
        self.documents: Mapping[str, Document] = _Documents(self)
        self.doc_texts: Mapping[str, str] = _Texts(self.documents)  # type: ignore[arg-type]
        self._infos: tuple[DocInfo, ...] | None = None
        self._hashes: dict[str, dict] | None = None
        self._live_rows = sum(s.meta.live for s in self.segments)
        self._live_length = sum(s.meta.live_length for s in self.segments)

    @property
    def complete(self) -> bool:
        """Every chunk has its dense vector (otherwise dense search covers only those that do)."""
        return self.manifest.pending == 0

    @property
    def dense_index(self) -> str:
        """Which index answers dense search: "exact", or the ANN factory, nprobe and refine of the segments that
        use one (the others are searched exactly)."""
        ann = [s.meta.ann for s in self.segments if s.meta.ann]
        if not ann:
            return "exact"
        kinds = sorted({f"{a['factory']} nprobe={a['nprobe']}" + (f" refine={a['refine']}" if a.get("refine") else "")
                        for a in ann})
        rest = len(self.segments) - len(ann)
        return f"ann ({', '.join(kinds)}; {len(ann)} segment(s))" + (f" + exact ({rest})" if rest else "")

    # -- documents --------------------------------------------------------------------------------------------
    @property
    def doc_infos(self) -> tuple[DocInfo, ...]:
        if self._infos is None:
            infos = [DocInfo(p, t, n, at, size) for s in self.segments
                     for p, _, t, n, at, size, _ in s.document_list()]
            self._infos = tuple(sorted(infos, key=lambda d: d.path))
        return self._infos

    def document_hashes(self) -> dict[str, dict]:
        """path -> {sha256, chunks, indexed_at, size, mtime_ns, segment} of the live documents (for
        incremental builds)."""
        if self._hashes is None:
            out: dict[str, dict] = {}
            for i, s in enumerate(self.segments):
                for p, sha, _, n, at, size, mtime in s.document_list():
                    out[p] = {"sha256": sha, "chunks": n, "indexed_at": at, "size": size, "mtime_ns": mtime,
                              "segment": i}
            self._hashes = out
        return self._hashes

    def document_records(self, paths: Sequence[str]) -> dict[str, dict]:
        """document_hashes() for `paths` only (those the index holds), looked up one by one."""
        out: dict[str, dict] = {}
        for p in paths:
            for i in range(len(self.segments) - 1, -1, -1):
                rec = self.segments[i].document_record(p)
                if rec is not None:
                    out[p] = {**rec, "segment": i}
                    break
        return out

    def find_document(self, path: str) -> Document | None:
        for s in reversed(self.segments):  # a document is live in one segment; the newest is the likeliest
            doc = s.document(path)
            if doc is not None:
                return doc
        return None

    # -- chunks -----------------------------------------------------------------------------------------------
    def chunks(self, keys: Sequence[Key]) -> dict[Key, Chunk]:
        by_seg: dict[int, list[int]] = {}
        for k in keys:
            si, row = split_key(k)
            by_seg.setdefault(si, []).append(row)
        out: dict[Key, Chunk] = {}
        for si, rows in by_seg.items():
            for row, chunk in self.segments[si].chunks(rows).items():
                out[key_of(si, row)] = chunk
        return out

    def iter_chunks(self) -> Iterator[tuple[Chunk, str]]:
        """Every live chunk with its document's title (reads the whole index: for maintenance and tests)."""
        for s in self.segments:
            for _, chunk, title in s.iter_chunks():
                yield chunk, title

    # -- search -----------------------------------------------------------------------------------------------
    def bm25(self, terms: Sequence[str], k: int) -> list[tuple[Key, float]]:
        found = postings.search(self.segments, terms, k, self._live_rows, self._live_length, self._order)
        return [(key_of(si, row), score) for si, row, score in found]

    def term_counts(self, terms: Sequence[str]) -> tuple[dict[str, int], int]:
        """(df, n): how many live chunks hold each index term (BM25's document frequency), and how many live
        chunks there are. Read from the segments' term tables: no chunk text is read."""
        out: dict[str, int] = {}
        for t in set(terms):
            n = 0
            for seg in self.segments:
                rows = seg.postings(t).rows
                mask = seg.deleted_mask()
                n += len(rows) - (int(mask[np.asarray(rows)].sum()) if mask is not None and len(rows) else 0)
            out[t] = n
        return out, self._live_rows

    def dense(self, queries: np.ndarray, k: int) -> list[list[tuple[Key, float]]]:
        found = dense_search(self.segments, self._searchers, queries, k, self._order)
        return [[(key_of(si, row), score) for si, row, score in per] for per in found]

    def _order(self, segment: int, rows: Sequence[int]) -> dict[int, tuple[str, int]]:
        return self.segments[segment].order_keys(rows)

    def vectors(self, keys: Sequence[Key]) -> tuple[np.ndarray, np.ndarray]:
        """(has, vectors): which of `keys` have a dense vector, and those vectors in order."""
        has = np.zeros(len(keys), dtype=bool)
        for i, k in enumerate(keys):
            si, row = split_key(k)
            has[i] = bool(self.segments[si].has_vector()[row]) if self.segments[si].parts else False
        idx = np.flatnonzero(has)
        dim = self.manifest.dimension
        out = np.zeros((len(idx), dim), dtype=np.float32)
        by_seg: dict[int, list[int]] = {}
        for j, i in enumerate(idx):
            by_seg.setdefault(split_key(keys[i])[0], []).append(j)
        for si, js in by_seg.items():
            rows = np.array([split_key(keys[idx[j]])[1] for j in js], dtype=np.int64)
            out[js] = self.segments[si].vectors_of(rows)
        return has, out

    def close(self) -> None:
        for s in self.segments:
            s.close()
        for v in self._searchers:
            getattr(v, "close", lambda: None)()


def open_index(index_dir: Path, wanted: Manifest | None = None) -> IndexReader:
    """Open the live generation. A writer may swap in a newer one and delete this one meanwhile: then the
    newer one is opened instead."""
    for attempt in range(3):
        gen = layout.require_generation(index_dir)
        try:
            reader = open_generation(index_dir, gen, wanted)
        except Exception:
            if attempt == 2 or layout.current_generation(index_dir) == gen:
                raise
            continue  # swapped out (and perhaps deleted) while being read: read the new one
        layout.clean_if_idle(index_dir)
        return reader
    raise AssertionError("unreachable")


def open_generation(index_dir: Path, gen: Path, wanted: Manifest | None) -> IndexReader:
    manifest = Manifest.read(gen / layout.MANIFEST)
    if wanted is not None:
        manifest.check(wanted, index_dir)
    root = index_dir / layout.SEGMENTS
    segments: list[Segment] = []
    try:
        for meta in manifest.segment_metas():
            segments.append(Segment(root, meta))
    except Exception:
        for s in segments:
            s.close()
        from ..errors import IndexMismatchError

        raise IndexMismatchError(f"index in {index_dir} is missing segment files: rebuild it with "
                                 "`assistant index --rebuild`") from None
    return IndexReader(gen, manifest, segments)
