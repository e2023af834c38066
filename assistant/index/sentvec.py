"""Sentence vectors made at index time, so that an extractive answer never embeds at question time.

Every quotable sentence of an indexed document (and each question that introduces one, see quotable.py)
is embedded once, after the chunk vectors, and stored in `sentences.sqlite` beside the index, keyed like
the embedding cache: a hash of the model, the backend and the exact text. A vector can therefore only
ever be found for the very words it was computed from: a document that changes cuts new sentences,
whose keys are new, and a stale row can never describe them. Bounded by `sentence_store_mb` (least
recently stored rows go first); a sentence that is not there is embedded at question time, as before.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..embed import Embedder
from ..quotable import VERSION as QUOTABLE_VERSION
from ..quotable import quotable_texts
from ..records import Document
from ..settings import Settings
from .embcache import EmbeddingCache, select_vectors, text_key
from .fill import Progress, backend_of, embed_texts

FILE = "sentences.sqlite"


def namespace(model_id: str, backend: str, dimension: int) -> str:
    return f"{model_id}|{backend}|{dimension}"


def open_store(index_dir: Path, emb: Embedder, dimension: int) -> EmbeddingCache:
    return EmbeddingCache(index_dir, namespace(emb.model_id, backend_of(emb), dimension), dimension, file=FILE,
                          wal=False)


BATCH_TEXTS = 20_000  # sentences gathered before they are looked up and embedded: bounds a build's memory


def done_mark(sha256: str) -> str:
    """What the store records for a document whose sentences it holds: its sha256 and the version of the
    rules that cut its quotable texts (quotable.VERSION), so that new rules embed the texts they add."""
    return f"{sha256} q{QUOTABLE_VERSION}"


_DOCS = "CREATE TABLE IF NOT EXISTS documents (path TEXT PRIMARY KEY, sha256 TEXT NOT NULL) WITHOUT ROWID"


def embed_sentences(index_dir: Path, emb: Embedder, dimension: int, docs: Iterable[Document],
                    max_mb: float, progress: Progress | None = None,
                    cancel: threading.Event | None = None) -> tuple[int, int]:
    """Store the vectors of the quotable texts of `docs` that the store lacks, a batch of documents at a
    time; each batch's documents are then recorded as done (path, sha256 and rules: done_mark), so that an
    interrupted build resumes with the rest. Returns (texts looked at, texts embedded)."""
    store = open_store(index_dir, emb, dimension)
    con = store._con
    con.execute(_DOCS)
    seen = embedded = 0

    def stage(name: str, done: int, total: int, note: str) -> None:
        if progress is not None:
            progress("sentences", done, total, note)

    def flush(batch: dict[str, None], batch_docs: list[Document]) -> int:
        texts = list(batch)
        keys = store.keys(texts)
        got = store.get(keys)  # marks them used: the texts of live documents are the last to be trimmed
        todo = [t for t, k in zip(texts, keys, strict=True) if k not in got]
        n = embed_texts(store, emb, todo, lambda pos, v: None, stage, cancel) if todo else 0
        if n == len(todo):  # not cancelled half-way
            with store._lock:
                con.executemany("INSERT OR REPLACE INTO documents VALUES (?, ?)",
                                [(d.path, done_mark(d.sha256)) for d in batch_docs])
        return n

    try:
        batch: dict[str, None] = {}
        batch_docs: list[Document] = []
        for doc in docs:
            if cancel is not None and cancel.is_set():
                break
            batch.update(dict.fromkeys(quotable_texts(doc)))
            batch_docs.append(doc)
            if len(batch) >= BATCH_TEXTS:
                seen, embedded = seen + len(batch), embedded + flush(batch, batch_docs)
                batch, batch_docs = {}, []
        if batch_docs and not (cancel is not None and cancel.is_set()):
            seen, embedded = seen + len(batch), embedded + flush(batch, batch_docs)
        if len(store) > store.rows_within(max_mb):
            store.trim(max_mb * 0.9)  # least recently stored first: room for the next updates
        return seen, embedded
    finally:
        store.close()


def fill_sentences(settings: Settings, emb: Embedder, paths: Sequence[str] | None = None,
                   progress: Progress | None = None, cancel: threading.Event | None = None) -> tuple[int, int]:
    """embed_sentences for the live documents whose current version the store has not done yet: those at
    `paths` only, when given (an update of a few files costs what they cost), else all. The caller holds
    the writer lock: one process writes the store at a time. Returns (texts looked at, texts embedded)."""
    if not settings.sentence_vectors:
        return 0, 0
    from .reader import open_index

    index_dir = settings.index_dir
    reader = open_index(index_dir)
    try:
        live = reader.document_records(list(paths)) if paths is not None else reader.document_hashes()
        done = _done(index_dir / FILE, list(live) if paths is not None else None)
        todo = [p for p, rec in live.items() if done.get(p) != done_mark(rec["sha256"])]
        if not todo:
            return 0, 0
        docs = (d for p in todo if (d := reader.find_document(p)) is not None)
        return embed_sentences(index_dir, emb, reader.manifest.dimension, docs,
                               settings.sentence_store_mb, progress, cancel)
    finally:
        reader.close()


def _done(path: Path, paths: list[str] | None) -> dict[str, str]:
    """path -> done_mark of the documents whose sentences the store holds (of `paths` only, when given)."""
    if not path.exists():
        return {}
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'documents'").fetchone():
            return {}
        if paths is None:
            return dict(con.execute("SELECT path, sha256 FROM documents"))
        out: dict[str, str] = {}
        for i in range(0, len(paths), 500):
            part = paths[i:i + 500]
            marks = ",".join("?" * len(part))
            out.update(con.execute(f"SELECT path, sha256 FROM documents WHERE path IN ({marks})", part))
        return out
    finally:
        con.close()


class SentenceLookup:
    """Read-only access to the stored sentence vectors, by text; opened on first use, and again when the
    file appears later (a server that started before its first build). Never writes."""

    def __init__(self, index_dir: Path, model_id: str, backend: str, dimension: int) -> None:
        self.path = index_dir / FILE
        self.namespace = namespace(model_id, backend, dimension)
        self.dimension = dimension
        self._con: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._next_try = 0.0

    def _connection(self) -> sqlite3.Connection | None:
        if self._con is None and time.monotonic() >= self._next_try:
            self._next_try = time.monotonic() + 5.0
            if self.path.exists():
                try:
                    self._con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False,
                                                timeout=5)
                except sqlite3.Error:
                    self._con = None
        return self._con

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        with self._lock:
            con = self._connection()
            if con is None or not texts:
                return {}
            by_key = {text_key(self.namespace, t): t for t in texts}
            try:
                found = select_vectors(con, list(by_key), self.dimension)
            except sqlite3.Error:  # a store being created or pruned right now: embed instead
                return {}
            return {by_key[k]: v for k, v in found.items()}

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None
