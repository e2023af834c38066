"""Reading the index in PostgreSQL: the same rankings, chunks and documents as the local reader, queried
from the live tables (so an update by any indexer is seen by the next query, without a restart)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ...errors import IndexMismatchError, IndexNotFoundError
from ...records import Chunk, Document, Section
from ..manifest import Manifest
from ..postings import K1, B
from ..reader import DOC_CACHE_CHARS, DocInfo
from .db import Database
from .schema import check_readable

Key = int  # chunks.id
MANIFEST_TTL = 1.0  # seconds a reader trusts the counts it read (documents, chunks)


def vector_literal(v: np.ndarray) -> str:
    return "[" + ",".join(format(float(x), ".8g") for x in v) + "]"


def parse_vector(text: str) -> np.ndarray:
    return np.array([float(x) for x in text.strip("[]").split(",")], dtype=np.float32)


def read_manifest(conn: Any) -> Manifest | None:
    row = conn.execute("SELECT m.data, c.documents, c.chunks FROM manifest m, corpus c").fetchone()
    if row is None:
        return None
    data, documents, chunks = row
    known = set(Manifest.__dataclass_fields__)
    m = Manifest(**{k: v for k, v in data.items() if k in known})
    m.documents, m.chunks, m.vectors, m.segments = int(documents), int(chunks), int(chunks), []
    return m


class _Documents(Mapping[str, Document]):
    """Documents by path, read on demand and cached (bounded). A cached document is dropped as soon as a
    chunk of a newer version of it is read, so a hit's offsets always index the text they are shown in."""

    def __init__(self, reader: PgReader) -> None:
        self._reader = reader
        self._cache: OrderedDict[str, tuple[int, Document]] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def seen(self, path: str, doc_id: int) -> None:
        with self._lock:
            got = self._cache.get(path)
            if got is not None and got[0] != doc_id:
                del self._cache[path]
                self._chars -= len(got[1].text)

    def __getitem__(self, path: str) -> Document:
        with self._lock:
            got = self._cache.get(path)
            if got is not None:
                self._cache.move_to_end(path)
                return got[1]
        found = self._reader.find_document(path)
        if found is None:
            raise KeyError(path)
        with self._lock:
            if path not in self._cache:
                self._cache[path] = found
                self._chars += len(found[1].text)
                while self._chars > DOC_CACHE_CHARS and len(self._cache) > 1:
                    _, (_, old) = self._cache.popitem(last=False)
                    self._chars -= len(old.text)
        return found[1]

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self._reader.has_document(path)

    def __iter__(self) -> Iterator[str]:
        return iter([d.path for d in self._reader.doc_infos])

    def __len__(self) -> int:
        return self._reader.manifest.documents


class _Texts(Mapping[str, str]):
    def __init__(self, docs: _Documents) -> None:
        self._docs = docs

    def __getitem__(self, path: str) -> str:
        return self._docs[path].text

    def __contains__(self, path: object) -> bool:
        return path in self._docs

    def __iter__(self) -> Iterator[str]:
        return iter(self._docs)

    def __len__(self) -> int:
        return len(self._docs)


class PgReader:
    """The index in one database; safe to share between threads (each query takes a pooled connection)."""

    def __init__(self, db: Database, wanted: Manifest | None = None, lexical: str = "bm25",
                 ann_threshold: int = 0) -> None:
        self.db = db
        self.lexical = lexical
        self.ann_threshold = ann_threshold  # this many chunks or more: HNSW; below (or 0): exact, as local
        with db.connection() as conn:
            check_readable(conn, db.shown)
            manifest = read_manifest(conn)
        if manifest is None:
            raise IndexNotFoundError(f"no index in {db.shown}: build it with `assistant index --store URL`")
        if wanted is not None and manifest.differences(wanted):
            raise IndexMismatchError(
                f"index in {db.shown} was built with other settings ({'; '.join(manifest.differences(wanted))}); "
                f"rebuild it: assistant index --rebuild --store URL")
        self._manifest, self._read_at = manifest, time.monotonic()
        self.documents: Mapping[str, Document] = _Documents(self)
        self.doc_texts: Mapping[str, str] = _Texts(self.documents)  # type: ignore[arg-type]

    @property
    def manifest(self) -> Manifest:
        if time.monotonic() - self._read_at > MANIFEST_TTL:
            with self.db.connection() as conn:
                fresh = read_manifest(conn)
            if fresh is not None:
                self._manifest, self._read_at = fresh, time.monotonic()
        return self._manifest

    @property
    def complete(self) -> bool:
        return True  # a document's vectors are committed with it

    @property
    def exact(self) -> bool:
        """Dense search scans every vector (as the local store does below `ann_threshold`) rather than
        the HNSW index: the same top k as the local store, not an approximation of it."""
        return self.ann_threshold <= 0 or self.manifest.chunks < self.ann_threshold

    @property
    def dense_index(self) -> str:
        return "exact" if self.exact else "hnsw (pgvector, cosine)"

    # -- documents --------------------------------------------------------------------------------------------
    @property
    def doc_infos(self) -> tuple[DocInfo, ...]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT path, title, chunks, indexed_at FROM documents ORDER BY path").fetchall()
        return tuple(DocInfo(p, t, int(n), at) for p, t, n, at in rows)

    def document_records(self, paths: Sequence[str] | None = None) -> dict[str, dict]:
        """path -> {sha256, chunks, indexed_at, size, mtime_ns} of the documents (only `paths`, if given)."""
        sql = "SELECT path, sha256, chunks, indexed_at, size, mtime_ns FROM documents"
        with self.db.connection() as conn:
            rows = (conn.execute(sql + " WHERE path = ANY(%s)", (list(paths),)) if paths is not None
                    else conn.execute(sql)).fetchall()
        return {p: {"sha256": sha, "chunks": int(n), "indexed_at": at, "size": int(size), "mtime_ns": int(mt)}
                for p, sha, n, at, size, mt in rows}

    def document_hashes(self) -> dict[str, dict]:
        return self.document_records()

    def has_document(self, path: str) -> bool:
        with self.db.connection() as conn:
            return conn.execute("SELECT 1 FROM documents WHERE path = %s", (path,)).fetchone() is not None

    def find_document(self, path: str) -> tuple[int, Document] | None:
        with self.db.connection() as conn:
            row = conn.execute("SELECT id, path, sha256, title, text, sections, pages FROM documents "
                               "WHERE path = %s", (path,)).fetchone()
        if row is None:
            return None
        doc_id, p, sha, title, text, sections, pages = row
        secs = tuple(Section(int(a), int(b), str(c)) for a, b, c in sections)
        return int(doc_id), Document(p, text, sha, title, secs, tuple(pages))

    # -- chunks -----------------------------------------------------------------------------------------------
    def chunks(self, keys: Sequence[Key]) -> dict[Key, Chunk]:
        """The chunks of `keys` that are still live (a key of a document replaced since is left out)."""
        if not keys:
            return {}
        with self.db.connection() as conn:
            rows = conn.execute('SELECT id, document, chunk_id, source, start, "end", text, headings, page '
                                "FROM chunks WHERE id = ANY(%s)", ([int(k) for k in keys],)).fetchall()
        docs = self.documents
        out: dict[Key, Chunk] = {}
        for key, doc_id, cid, source, start, end, text, headings, page in rows:
            docs.seen(source, int(doc_id))  # type: ignore[attr-defined]
            out[int(key)] = Chunk(cid, source, int(start), int(end), text, tuple(headings), page)
        return out

    def iter_chunks(self) -> Iterator[tuple[Chunk, str]]:
        with self.db.connection() as conn:
            rows = conn.execute('SELECT c.chunk_id, c.source, c.start, c."end", c.text, c.headings, c.page, d.title '
                                "FROM chunks c JOIN documents d ON d.id = c.document ORDER BY c.id").fetchall()
        for cid, source, start, end, text, headings, page, title in rows:
            yield Chunk(cid, source, int(start), int(end), text, tuple(headings), page), title

    # -- search -----------------------------------------------------------------------------------------------
    def bm25(self, terms: Sequence[str], k: int) -> list[tuple[Key, float]]:
        if self.lexical == "fts":
            return self.full_text(terms, k)
        if not terms or k <= 0:
            return []
        mult: dict[str, int] = {}
        for t in terms:
            mult[t] = mult.get(t, 0) + 1
        # Lucene's BM25 over the live totals, as the local postings score it. Each score is summed term by
        # term in the query's order (as the local store sums), so chunks with the same term statistics get
        # the same float and tie; ties by document and position, then chunk id (the local top_k order).
        sql = """
WITH q AS (SELECT * FROM unnest(%(terms)s::text[], %(mults)s::int[]) WITH ORDINALITY AS q(term, mult, ord)),
     d AS (SELECT q.term, q.mult, q.ord, count(*) AS df FROM q JOIN postings p ON p.term = q.term
           GROUP BY q.term, q.mult, q.ord),
     w AS (SELECT d.term, d.ord, d.mult * ln(1 + (c.chunks - d.df + 0.5) / (d.df + 0.5)) AS weight,
                  %(k1)s * (1 - %(b)s) AS n0, %(k1)s * %(b)s * c.chunks / greatest(c.length, 1) AS n1
           FROM d, corpus c)
SELECT ch.id, sum(w.weight * p.tf / (w.n0 + w.n1 * ch.length + p.tf) ORDER BY w.ord) AS score,
       ch.source, ch.start, ch.fid
FROM w JOIN postings p ON p.term = w.term JOIN chunks ch ON ch.id = p.chunk
GROUP BY ch.id ORDER BY score DESC, ch.source, ch.start, ch.fid LIMIT %(k)s"""
        with self.db.connection() as conn:
            rows = conn.execute(sql, {"terms": list(mult), "mults": list(mult.values()), "k1": K1, "b": B,
                                      "k": int(k)}).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows if r[1] > 0]

    def term_counts(self, terms: Sequence[str]) -> tuple[dict[str, int], int]:
        """(df, n): live chunks holding each index term, and live chunks in all (see IndexReader)."""
        wanted = sorted(set(terms))
        with self.db.connection() as conn:
            rows = conn.execute("SELECT term, count(*) FROM postings WHERE term = ANY(%s) GROUP BY term",
                                (wanted,)).fetchall() if wanted else []
            n = conn.execute("SELECT chunks FROM corpus").fetchone()
        found = {str(t): int(c) for t, c in rows}
        return {t: found.get(t, 0) for t in wanted}, int(n[0]) if n else 0

    def full_text(self, terms: Sequence[str], k: int) -> list[tuple[Key, float]]:
        """PostgreSQL's own ranking: any of the terms (`|`), ts_rank_cd over the GIN-indexed tsvector."""
        words = sorted({t for t in terms if t.replace("_", "").isalnum()})
        if not words or k <= 0:
            return []
        sql = ("SELECT id, ts_rank_cd(tsv, q) AS score FROM chunks, to_tsquery('english', %s) q WHERE tsv @@ q "
               "ORDER BY score DESC, source, start, fid LIMIT %s")
        with self.db.connection() as conn:
            rows = conn.execute(sql, (" | ".join(f"'{w}'" for w in words), int(k))).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    def dense(self, queries: np.ndarray, k: int) -> list[list[tuple[Key, float]]]:
        """Per query, the top `k` by cosine, ties by document and position then chunk id. Below
        `ann_threshold` chunks every vector is scored (the HNSW index switched off for the statement);
        above it the HNSW index answers, searched wider than k (recall) and re-sorted for the ties."""
        if self.exact:
            setting = "SET LOCAL enable_indexscan = off"
            sql = """
SELECT id, 1 - (embedding <=> %(q)s::vector) AS score FROM chunks
ORDER BY score DESC, source, start, fid LIMIT %(k)s"""
        else:
            setting = f"SET LOCAL hnsw.ef_search = {max(100, 4 * int(k))}"
            sql = """
SELECT id, score FROM (
    SELECT id, source, start, fid, 1 - (embedding <=> %(q)s::vector) AS score FROM chunks
    ORDER BY embedding <=> %(q)s::vector LIMIT %(k)s) top
ORDER BY score DESC, source, start, fid"""
        out: list[list[tuple[Key, float]]] = []
        with self.db.connection() as conn, conn.transaction():
            conn.execute(setting)
            for q in np.asarray(queries, dtype=np.float32):
                rows = conn.execute(sql, {"q": vector_literal(q), "k": int(k)}).fetchall()
                out.append([(int(i), float(s)) for i, s in rows])
        return out

    def vectors(self, keys: Sequence[Key]) -> tuple[np.ndarray, np.ndarray]:
        dim = self._manifest.dimension
        if not keys:
            return np.zeros(0, dtype=bool), np.zeros((0, dim), dtype=np.float32)
        with self.db.connection() as conn:
            rows = conn.execute("SELECT id, embedding::text FROM chunks WHERE id = ANY(%s)",
                                ([int(k) for k in keys],)).fetchall()
        got = {int(i): parse_vector(t) for i, t in rows}
        has = np.array([int(k) in got for k in keys], dtype=bool)
        vecs = np.stack([got[int(k)] for k in keys if int(k) in got]) if has.any() else np.zeros((0, dim), np.float32)
        return has, vecs.astype(np.float32)

    def close(self) -> None:
        """Nothing to release: connections belong to the store's pool."""
