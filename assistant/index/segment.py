"""A segment: the documents of one batch, their chunks, postings and vectors, written once, never changed.

    segments/<name>/chunks.sqlite      documents (with their loaded text), chunks by row, the term table
    segments/<name>/postings-rows.npy  BM25 postings (see postings.py), doclen.npy, fids.npy (chunk ids)
    segments/<name>/vectors-<p>.npy    dense vectors of the rows in rows-<p>.npy (a build writes part 0;
                                       vectors filled in later come as further parts)
    segments/<name>/ann-<tag>.faiss    an approximate index over all vectors, for large segments
    segments/<name>/deleted-<tag>.npy  rows deleted since (a generation names the one in force)

Opening a segment opens its SQLite file and memory-maps its arrays: nothing is read per chunk. Texts are
read by row when a query needs them. Which parts, deletions and ANN file count is said by the
generation's manifest (SegmentMeta), so a file that a killed writer left half-written is never read.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..records import Chunk, Document, Section
from .postings import BLOCK, PostingsBuilder, TermPostings
from .terms import tokenize

SCHEMA = """
CREATE TABLE documents (
  path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL,
  sections TEXT NOT NULL, pages TEXT NOT NULL, chunks INTEGER NOT NULL, indexed_at TEXT NOT NULL,
  first_row INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL);
CREATE TABLE chunks (
  row INTEGER PRIMARY KEY, id TEXT NOT NULL, source TEXT NOT NULL, start INTEGER NOT NULL,
  end INTEGER NOT NULL, text TEXT NOT NULL, headings TEXT NOT NULL, page INTEGER);
CREATE TABLE terms (term TEXT PRIMARY KEY, start INTEGER NOT NULL, df INTEGER NOT NULL, block INTEGER NOT NULL)
  WITHOUT ROWID;
"""
DB = "chunks.sqlite"
MMAP_BYTES = 1 << 40  # SQLite caps it at its compile-time maximum


def faiss_id(chunk_id: str) -> int:
    """The int64 id of a chunk: its 16-hex-digit content id, folded into 63 bits."""
    return int(chunk_id, 16) & 0x7FFF_FFFF_FFFF_FFFF


@dataclass
class SegmentMeta:
    """A segment as one generation sees it (in manifest.json)."""

    name: str
    rows: int
    length: float  # sum of the rows' BM25 lengths
    docs: int
    parts: list[list[Any]] = field(default_factory=list)  # [part name, vectors in it]
    deleted: str = ""  # file of deleted rows, "" when none
    deleted_rows: int = 0
    deleted_length: float = 0.0
    deleted_vectors: int = 0  # deleted rows that had a vector
    deleted_docs: int = 0
    ann: dict[str, Any] = field(default_factory=dict)  # file, factory, nprobe, rows; {} when exact

    @property
    def live(self) -> int:
        return self.rows - self.deleted_rows

    @property
    def live_length(self) -> float:
        return self.length - self.deleted_length

    @property
    def vectors(self) -> int:
        return sum(int(n) for _, n in self.parts)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmentMeta:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def save_array(path: Path, array: np.ndarray) -> None:
    """Write an .npy file and fsync it (no pickle: plain dtypes only)."""
    with open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def load_array(path: Path) -> np.ndarray:
    """The array of an .npy file, memory-mapped; a plain ndarray view of the map (np.memmap's own slicing
    and indexing cost microseconds per call, and search makes thousands)."""
    return np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))


class SegmentWriter:
    """Builds one segment: add documents with their chunks, then finish (vectors are added as parts)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        self.folder = folder
        self._con = sqlite3.connect(str(folder / DB), isolation_level=None)
        self._con.execute("PRAGMA journal_mode=OFF")
        self._con.execute("PRAGMA synchronous=OFF")  # fsynced once, when finished
        self._con.executescript(SCHEMA)
        self._con.execute("BEGIN")
        self._postings = PostingsBuilder()
        self._fids: list[int] = []
        self.docs = 0

    @property
    def rows(self) -> int:
        return len(self._fids)

    def add(self, doc: Document, chunks: Sequence[Chunk], indexed_at: str, stat: tuple[int, int] = (0, 0)
            ) -> range:
        """Append a document and its chunks; the rows they got. `stat`: the file's (size, mtime_ns) when it
        was read, so that the next update need not read it again while both are unchanged."""
        first = self.rows
        self._con.execute(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (doc.path, doc.sha256, doc.title, doc.text,
             json.dumps([[s.start, s.level, s.title] for s in doc.sections]), json.dumps(list(doc.pages)),
             len(chunks), indexed_at, first, int(stat[0]), int(stat[1])))
        self._con.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?)",
            [(first + i, c.id, c.source, c.start, c.end, c.text, json.dumps(list(c.headings)), c.page)
             for i, c in enumerate(chunks)])
        for c in chunks:
            self._postings.add(tokenize(c.text))
            self._fids.append(faiss_id(c.id))
        self.docs += 1
        return range(first, self.rows)

    def finish(self) -> SegmentMeta:
        built = self._postings.finish()
        self._con.executemany("INSERT INTO terms VALUES (?,?,?,?)",
                              ((t, s, df, b) for t, (s, df, b) in built.terms.items()))
        self._con.execute("COMMIT")
        self._con.close()
        fsync_file(self.folder / DB)
        save_array(self.folder / "postings-rows.npy", built.rows)
        save_array(self.folder / "postings-tfs.npy", built.tfs)
        for name, array in built.blocks.items():
            save_array(self.folder / f"blocks-{name}.npy", array)
        save_array(self.folder / "doclen.npy", built.doclen)
        save_array(self.folder / "fids.npy", np.asarray(self._fids, dtype=np.int64))
        return SegmentMeta(self.folder.name, self.rows, float(built.doclen.astype(np.float64).sum()), self.docs)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._con.close()


def write_part(folder: Path, name: str, rows: np.ndarray, vectors: np.ndarray) -> list[Any]:
    """Write a vector part (rows sorted) into a segment folder; its [name, count] for SegmentMeta.parts."""
    order = np.argsort(rows, kind="stable")
    save_array(folder / f"rows-{name}.npy", np.asarray(rows, dtype=np.int32)[order])
    save_array(folder / f"vectors-{name}.npy", np.asarray(vectors, dtype=np.float32)[order])
    return [name, len(rows)]


class Segment:
    """A segment opened for reading, as one generation sees it; safe to share between threads."""

    def __init__(self, root: Path, meta: SegmentMeta) -> None:
        self.meta = meta
        self.folder = root / meta.name
        self._con = sqlite3.connect(f"file:{self.folder / DB}?mode=ro&immutable=1", uri=True,
                                    check_same_thread=False)
        self._mapped = False  # see _query
        self._lock = threading.Lock()
        self._rows = load_array(self.folder / "postings-rows.npy")
        self._tfs = load_array(self.folder / "postings-tfs.npy")
        self._blocks = {name: load_array(self.folder / f"blocks-{name}.npy") for name in ("first", "last", "tf", "dl")}
        self._doclen = load_array(self.folder / "doclen.npy")
        self._fids = load_array(self.folder / "fids.npy")
        self.rows_total = meta.rows
        self.parts = [(load_array(self.folder / f"rows-{p}.npy"), load_array(self.folder / f"vectors-{p}.npy"))
                      for p, _ in meta.parts]
        self._deleted = load_array(self.folder / meta.deleted) if meta.deleted else None
        first = self.parts[0][0] if len(self.parts) == 1 else None  # its rows are sorted and distinct
        self._all_in_one = (first is not None and len(first) == self.rows_total > 0
                            and int(first[0]) == 0 and int(first[-1]) == self.rows_total - 1)
        self._mask: np.ndarray | None = None
        self._has: np.ndarray | None = None
        self.ann = None  # set by the reader when the manifest names an ANN file

    # -- what postings.search needs -----------------------------------------------------------------------
    def postings(self, term: str) -> TermPostings:
        row = self._query("SELECT start, df, block FROM terms WHERE term = ?", (term,))
        if not row:
            return _NONE
        s, df, b = row[0]
        n = (df + BLOCK - 1) // BLOCK
        bl = self._blocks
        return TermPostings(self._rows[s:s + df], self._tfs[s:s + df], bl["first"][b:b + n], bl["last"][b:b + n],
                            bl["tf"][b:b + n], bl["dl"][b:b + n])

    def deleted_mask(self) -> np.ndarray | None:
        if self._deleted is None or not len(self._deleted):
            return None
        if self._mask is None:
            mask = np.zeros(self.rows_total, dtype=bool)
            mask[np.asarray(self._deleted)] = True
            self._mask = mask
        return self._mask

    def deleted_rows(self) -> np.ndarray:
        return np.asarray(self._deleted) if self._deleted is not None else _EMPTY_I

    def doclen(self) -> np.ndarray:
        return self._doclen

    def fids(self) -> np.ndarray:
        return self._fids

    # -- rows and documents ---------------------------------------------------------------------------------
    def is_live(self, row: int) -> bool:
        mask = self.deleted_mask()
        return mask is None or not mask[row]

    def chunks(self, rows: Sequence[int]) -> dict[int, Chunk]:
        return {r: Chunk(cid, s, a, b, t, tuple(json.loads(h)), p)
                for r, cid, s, a, b, t, h, p in self._by_rows("id, source, start, end, text, headings, page", rows)}

    def order_keys(self, rows: Sequence[int]) -> dict[int, tuple[str, int]]:
        """(source, start) of each row: the tie-break of equal scores."""
        return {r: (s, a) for r, s, a in self._by_rows("source, start", rows)}

    def _by_rows(self, columns: str, rows: Sequence[int]) -> list[tuple]:
        """`row` and `columns` of the chunks at `rows`, 500 rows per query."""
        out: list[tuple] = []
        for i in range(0, len(rows), 500):
            part = [int(r) for r in rows[i:i + 500]]
            out += self._query(f"SELECT row, {columns} FROM chunks WHERE row IN ({','.join('?' * len(part))})", part)
        return out

    def iter_chunks(self) -> Iterator[tuple[int, Chunk, str]]:
        """Every live chunk with its row and its document's title, in row order."""
        mask = self.deleted_mask()
        with self._lock:
            rows = self._con.execute(
                "SELECT c.row, c.id, c.source, c.start, c.end, c.text, c.headings, c.page, d.title FROM chunks c "
                "JOIN documents d ON d.path = c.source ORDER BY c.row").fetchall()
        for r, cid, s, a, b, t, h, p, title in rows:
            if mask is None or not mask[r]:
                yield r, Chunk(cid, s, a, b, t, tuple(json.loads(h)), p), title

    def document(self, path: str) -> Document | None:
        """The live document at `path` in this segment, if any."""
        found = self._query("SELECT path, sha256, title, text, sections, pages, first_row FROM documents "
                            "WHERE path = ?", (path,))
        if not found or not self.is_live(int(found[0][6])):
            return None
        p, sha, title, text, sections, pages, _ = found[0]
        secs = tuple(Section(int(a), int(b), str(c)) for a, b, c in json.loads(sections))
        return Document(p, text, sha, title, secs, tuple(json.loads(pages)))

    def iter_documents(self) -> Iterator[tuple[Document, range, str, tuple[int, int]]]:
        """Every live document with its rows, when it was indexed and its file's (size, mtime_ns), in row
        order, a page at a time."""
        after = -1
        while True:
            page = self._query("SELECT path, sha256, title, text, sections, pages, first_row, chunks, indexed_at, "
                               "size, mtime_ns FROM documents WHERE first_row > ? ORDER BY first_row LIMIT 64",
                               (after,))
            if not page:
                return
            for p, sha, title, text, sections, pages, first, n, at, size, mtime in page:
                after = int(first)
                if self.is_live(after):
                    secs = tuple(Section(int(a), int(b), str(c)) for a, b, c in json.loads(sections))
                    doc = Document(p, text, sha, title, secs, tuple(json.loads(pages)))
                    yield doc, range(after, after + n), at, (int(size), int(mtime))

    def document_record(self, path: str) -> dict[str, Any] | None:
        """sha256, chunks, indexed_at, size and mtime_ns of the live document at `path`, if any."""
        found = self._query("SELECT sha256, chunks, indexed_at, size, mtime_ns, first_row FROM documents "
                            "WHERE path = ?", (path,))
        if not found or not self.is_live(int(found[0][5])):
            return None
        sha, n, at, size, mtime, _ = found[0]
        return {"sha256": sha, "chunks": int(n), "indexed_at": at, "size": int(size), "mtime_ns": int(mtime)}

    def document_rows(self, path: str) -> range | None:
        found = self._query("SELECT first_row, chunks FROM documents WHERE path = ?", (path,))
        if not found or not self.is_live(int(found[0][0])):
            return None
        first, n = found[0]
        return range(int(first), int(first) + int(n))

    def document_list(self) -> list[tuple[str, str, str, int, str, int, int]]:
        """(path, sha256, title, chunks, indexed_at, size, mtime_ns) of the live documents, without texts."""
        rows = self._query("SELECT path, sha256, title, chunks, indexed_at, size, mtime_ns, first_row FROM documents",
                           ())
        return [(p, sha, t, int(n), at, int(size), int(mt)) for p, sha, t, n, at, size, mt, first in rows
                if self.is_live(int(first))]

    def _query(self, sql: str, args: Sequence[Any]) -> list[tuple]:
        with self._lock:
            if not self._mapped:
                # Read through a memory map (as far as SQLite allows: 2 GB by default) instead of a read(2)
                # per page: a query's 80 chunks from a million-row file took 2.0 ms, mapped 0.4 ms. Set on
                # the first query, so that opening stays free of statements.
                self._con.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
                self._mapped = True
            return self._con.execute(sql, tuple(args)).fetchall()

    # -- vectors ----------------------------------------------------------------------------------------------
    def has_vector(self) -> np.ndarray:
        """Bool per row: the row has a dense vector."""
        if self._has is None:
            has = np.zeros(self.rows_total, dtype=bool)
            for rows, _ in self.parts:
                has[np.asarray(rows)] = True
            self._has = has
        return self._has

    def vectors_of(self, rows: np.ndarray) -> np.ndarray:
        """Vectors of `rows` (all of which have one)."""
        if self._all_in_one:  # part 0 holds every row, in row order: no search
            return np.asarray(self.parts[0][1][np.asarray(rows, dtype=np.int64)], dtype=np.float32)
        out = np.empty((len(rows), self.parts[0][1].shape[1]), dtype=np.float32)
        done = np.zeros(len(rows), dtype=bool)
        for prow, pvec in self.parts:
            pos = np.searchsorted(prow, rows)
            pos = np.minimum(pos, len(prow) - 1)
            hit = (np.asarray(prow)[pos] == rows) & ~done
            if hit.any():
                out[hit] = pvec[pos[hit]]
                done |= hit
        if not done.all():
            raise KeyError("rows without a vector")
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._con.close()


_EMPTY_I = np.zeros(0, dtype=np.int32)
_EMPTY_F = np.zeros(0, dtype=np.float32)
_NONE = TermPostings(_EMPTY_I, _EMPTY_F, _EMPTY_I, _EMPTY_I, _EMPTY_F, _EMPTY_F)
