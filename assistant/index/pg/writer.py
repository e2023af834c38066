"""Updating the index in PostgreSQL: the folder compared with the documents table as the local build does
(plan_update), then one transaction per document (its old rows out, its new rows, postings and vectors
in), so a reader sees the old or the new version and a killed indexer leaves no partial document. A
session advisory lock keeps a second indexer out."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from ...chunk import chunk_document, embedding_text
from ...embed import Embedder, embedder_for
from ...errors import DocumentError, IndexLockedError, IndexMismatchError
from ...load import SUPPORTED_SUFFIXES, Skipped, SourceFile, load_file, scan_folder, scan_paths
from ...records import Chunk, Document
from ...settings import Settings
from ..build import Progress, plan_update, wanted_manifest
from ..fill import backend_of, cached, embed_texts, open_cache
from ..manifest import Manifest
from ..report import BuildReport
from ..segment import faiss_id
from ..terms import tokenize
from ..write import timestamp
from .db import Database
from .reader import read_manifest, vector_literal
from .schema import migrate

LOCK_KEY = 0x61737369  # pg_advisory_lock key of the indexer ("assi")
BATCH_CHUNKS = 512  # chunks loaded and embedded together before their documents are written one by one


@contextlib.contextmanager
def indexer_lock(db: Database) -> Iterator[Any]:
    """A connection of its own holding the advisory lock for as long as the update runs."""
    conn = db.connect()
    try:
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
            raise IndexLockedError(f"another process is writing the index in {db.shown}")
        yield conn
    finally:
        conn.close()  # the lock goes with the session, also when the process is killed


def build_pg(db: Database, settings: Settings, *, embedder: Embedder | None = None, rebuild: bool = False,
             progress: Progress | None = None, replace_folder: bool = False, wait: bool = True,
             cancel: threading.Event | None = None, paths: Sequence[str] | None = None,
             merge: bool = True) -> BuildReport:
    """build_index for a PostgreSQL store (`wait` and `merge` have nothing to do: vectors are committed with
    their document, and the database maintains its indexes)."""
    del wait, merge
    t0 = time.perf_counter()
    docs_dir = settings.docs_dir.resolve()
    if not docs_dir.is_dir():
        raise DocumentError(str(settings.docs_dir), "no such folder" if not docs_dir.exists() else "not a folder")
    with indexer_lock(db) as conn:
        have_schema = conn.execute("SELECT to_regclass('manifest')").fetchone()[0] is not None
        old = read_manifest(conn) if have_schema else None
        built_from = old.built_from(settings.index_dir) if old is not None and old.docs_dir else None
        other_folder = built_from is not None and built_from.resolve() != docs_dir
        if other_folder and not replace_folder:
            raise IndexMismatchError(
                f"index in {db.shown} was built from {built_from}, not {settings.docs_dir}: to index "
                f"{settings.docs_dir} there run `assistant index {settings.docs_dir} --store URL` (it replaces "
                "that index), or use another database")
        emb = embedder if embedder is not None else embedder_for(settings)
        wanted = wanted_manifest(settings, emb.model_id, backend=backend_of(emb))
        reason = ("--rebuild asked for" if rebuild else
                  f"documents folder changed: index had {built_from}, now {settings.docs_dir}" if other_folder else
                  "settings changed: " + "; ".join(old.differences(wanted))
                  if old is not None and old.build_key() != wanted.build_key() else "")
        if old is None or reason or conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
            dimension = emb.dimension
        else:
            dimension = old.dimension
        if reason and old is not None and old.dimension != dimension:
            conn.execute("DROP TABLE IF EXISTS postings, chunks, documents, corpus, manifest, schema_migrations")
        migrate(conn, dimension, db.shown)
        full = bool(reason) or old is None
        had_documents = old is not None and old.documents > 0
        if full:
            with conn.transaction():
                conn.execute("DELETE FROM documents")
                conn.execute("UPDATE corpus SET documents = 0, chunks = 0, length = 0")
                _write_manifest(conn, replace(wanted, dimension=dimension, max_seq_length=emb.max_tokens), settings,
                                {}, None)
            old = read_manifest(conn)
        assert old is not None
        targeted = paths is not None and not full
        old_docs = _records(conn, list(paths or ()) if targeted else None)
        known = {r: (int(v.get("size", 0)), int(v.get("mtime_ns", 0)), str(v["sha256"]))
                 for r, v in old.skipped.items()}
        known |= {r: (d["size"], d["mtime_ns"], d["sha256"]) for r, d in old_docs.items()}
        if targeted:
            files, skipped, _ = scan_paths(settings.docs_dir, list(paths or ()), settings.max_file_mb, known)
        else:
            files, skipped = scan_folder(settings.docs_dir, settings.max_file_mb, known)
        timings = {"scan": time.perf_counter() - t0}
        if not files and not old_docs and old.chunks == 0:
            raise DocumentError(str(settings.docs_dir),
                                f"no documents to index (supported: {' '.join(SUPPORTED_SUFFIXES)}); "
                                "add files to the folder or pass --docs FOLDER")
        by_rel = {f.rel: f for f in files}
        added, changed, removed, unchanged, skipped = plan_update(False, old, by_rel, skipped, old_docs)
        written, kept, embedded = _write(db, conn, settings, emb, dimension, by_rel, added, changed, skipped,
                                         progress, cancel, timings)
        stopped = cancel is not None and cancel.is_set()
        gone = [] if stopped else list(removed)
        for rel in gone:
            with conn.transaction():
                _delete(conn, rel)
        live_sha = {r: v["sha256"] for r, v in old_docs.items() if r not in gone} | written
        memo = {sk.rel: {"sha256": by_rel[sk.rel].sha256, "reason": sk.reason, "size": by_rel[sk.rel].size,
                         "mtime_ns": by_rel[sk.rel].mtime_ns}
                for sk in skipped if sk.rel in by_rel and live_sha.get(sk.rel) != by_rel[sk.rel].sha256}
        if targeted:
            memo = {r: v for r, v in old.skipped.items() if r not in set(paths or ())} | memo
        if full or written or gone or memo != old.skipped:
            max_seq = emb.max_tokens if written or full else old.max_seq_length
            with conn.transaction():
                _write_manifest(conn, replace(wanted, dimension=dimension, max_seq_length=max_seq), settings,
                                memo, time.perf_counter() - t0)
        chunks = int(conn.execute("SELECT chunks FROM corpus").fetchone()[0])
    ok_added = tuple(r for r in added if r in written)
    ok_changed = tuple(r for r in changed if r in written)
    report = BuildReport(settings.index_dir, ok_added, ok_changed, (*unchanged, *kept), tuple(gone), tuple(skipped),
                         chunks, embedded, time.perf_counter() - t0, timings=timings,
                         pending=len([r for r in (*added, *changed) if r not in written and r not in kept]) if stopped
                         else 0)
    if reason:
        report = replace(report, rebuilt=had_documents or rebuild, reason=reason)
    return report


def _records(conn: Any, paths: list[str] | None) -> dict[str, dict]:
    sql = "SELECT path, sha256, chunks, indexed_at, size, mtime_ns FROM documents"
    rows = (conn.execute(sql + " WHERE path = ANY(%s)", (paths,)) if paths is not None
            else conn.execute(sql)).fetchall()
    return {p: {"sha256": sha, "chunks": int(n), "indexed_at": at, "size": int(size), "mtime_ns": int(mt)}
            for p, sha, n, at, size, mt in rows}


def _write_manifest(conn: Any, m: Manifest, settings: Settings, skipped: dict, seconds: float | None) -> None:
    m = replace(m, ann_threshold=0, ann_nprobe=0, segments=[], skipped=skipped,
                docs_dir=str(settings.docs_dir.resolve()), built_at=timestamp(), build_seconds=round(seconds or 0.0, 3))
    data = {k: v for k, v in asdict(m).items() if k not in ("chunks", "vectors", "documents", "segments")}
    conn.execute("INSERT INTO manifest VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data",
                 (json.dumps(data),))


def _write(db: Database, conn: Any, settings: Settings, emb: Embedder, dimension: int, by_rel: dict[str, SourceFile],
           added: tuple[str, ...], changed: tuple[str, ...], skipped: list[Skipped], progress: Progress | None,
           cancel: threading.Event | None, timings: dict[str, float]) -> tuple[dict[str, str], list[str], int]:
    """Load, chunk and embed the new and changed documents a batch at a time, and commit each document in
    a transaction of its own. (rel -> sha256 written, changed ones kept as they were, texts embedded)."""
    todo = [*added, *changed]
    written: dict[str, str] = {}
    kept: list[str] = []
    embedded = 0
    cache = open_cache(settings.index_dir, emb, dimension)
    try:
        batch: list[tuple[Document, list[Chunk], SourceFile]] = []
        size = 0
        for i, rel in enumerate(todo):
            if cancel is not None and cancel.is_set():
                break
            if progress:
                progress("reading", i, len(todo), rel)
            try:
                doc = load_file(by_rel[rel])
                chunks = chunk_document(doc, tokens=settings.chunk_tokens, overlap=settings.chunk_overlap,
                                        max_model_tokens=emb.max_tokens, count_model=emb.count_tokens)
                if not chunks:
                    raise DocumentError(rel, "no text to index")
            except DocumentError as e:
                skipped.append(Skipped(rel, e.reason + ("; kept the previous version" if rel in changed else "")))
                if rel in changed:
                    kept.append(rel)
                continue
            batch.append((doc, chunks, by_rel[rel]))
            size += len(chunks)
            if size >= BATCH_CHUNKS or i == len(todo) - 1:
                embedded += _commit(conn, cache, emb, batch, written, cancel)
                batch, size = [], 0
        if batch:
            embedded += _commit(conn, cache, emb, batch, written, cancel)
        if progress:
            progress("reading", len(todo), len(todo), "")
    finally:
        cache.close()
    skipped.sort(key=lambda sk: sk.rel)
    return written, kept, embedded


def _commit(conn: Any, cache: Any, emb: Embedder, batch: list[tuple[Document, list[Chunk], SourceFile]],
            written: dict[str, str], cancel: threading.Event | None) -> int:
    texts = [embedding_text(doc, c) for doc, chunks, _ in batch for c in chunks]
    have, vecs, missing = cached(cache, texts)
    out = np.zeros((len(texts), vecs.shape[1] if len(vecs) else emb.dimension), dtype=np.float32)
    if have:
        out[np.array(have)] = vecs

    def take(pos: list[int], v: np.ndarray) -> None:
        out[np.array([missing[p] for p in pos])] = v

    todo = [texts[i] for i in missing]
    n = embed_texts(cache, emb, todo, take, None, cancel)
    if n < len(set(todo)):  # it counts identical texts once
        return n  # cancelled: nothing of this batch is written
    at = 0
    now = timestamp()
    for doc, chunks, src in batch:
        with conn.transaction():
            _delete(conn, doc.path)
            _insert(conn, doc, chunks, out[at:at + len(chunks)], now, src)
        at += len(chunks)
        written[doc.path] = doc.sha256
    return n


def _delete(conn: Any, rel: str) -> None:
    row = conn.execute("SELECT id FROM documents WHERE path = %s", (rel,)).fetchone()
    if row is None:
        return
    n, length = conn.execute("SELECT count(*), coalesce(sum(length), 0) FROM chunks WHERE document = %s",
                             (row[0],)).fetchone()
    conn.execute("DELETE FROM postings WHERE chunk IN (SELECT id FROM chunks WHERE document = %s)", (row[0],))
    conn.execute("DELETE FROM documents WHERE id = %s", (row[0],))
    conn.execute("UPDATE corpus SET documents = documents - 1, chunks = chunks - %s, length = length - %s",
                 (int(n), float(length)))


def _insert(conn: Any, doc: Document, chunks: list[Chunk], vecs: np.ndarray, now: str, src: SourceFile) -> None:
    doc_id = conn.execute(
        "INSERT INTO documents (path, sha256, title, text, sections, pages, chunks, indexed_at, size, mtime_ns) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (doc.path, doc.sha256, doc.title, doc.text, json.dumps([[s.start, s.level, s.title] for s in doc.sections]),
         json.dumps(list(doc.pages)), len(chunks), now, int(src.size), int(src.mtime_ns))).fetchone()[0]
    tokens = [tokenize(c.text) for c in chunks]
    lengths = [float(len(t) or 1) for t in tokens]  # an empty text counts as one token, as locally
    ids = [r[0] for r in conn.execute(
        "SELECT nextval(pg_get_serial_sequence('chunks', 'id')) FROM generate_series(1, %s)", (len(chunks),))]
    with conn.cursor().copy('COPY chunks (id, document, chunk_id, fid, source, start, "end", text, headings, page, '
                            "length, embedding) FROM STDIN") as copy:
        for cid, c, ln, v in zip(ids, chunks, lengths, vecs, strict=True):
            copy.write_row((cid, doc_id, c.id, faiss_id(c.id), c.source, c.start, c.end, c.text,
                            json.dumps(list(c.headings)), c.page, ln, vector_literal(v)))
    with conn.cursor().copy("COPY postings (term, chunk, tf) FROM STDIN") as copy:
        for cid, toks in zip(ids, tokens, strict=True):
            for term, tf in Counter(toks).items():
                copy.write_row((term, cid, float(tf)))
    conn.execute("UPDATE corpus SET documents = documents + 1, chunks = chunks + %s, length = length + %s",
                 (len(chunks), float(sum(lengths))))
