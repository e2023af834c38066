"""SQLite file of documents (with their loaded text, so citations can quote) and chunks."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..records import Chunk, Document, Section

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
  path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL,
  sections TEXT NOT NULL, pages TEXT NOT NULL, chunks INTEGER NOT NULL, indexed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
  id TEXT PRIMARY KEY, source TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
  text TEXT NOT NULL, headings TEXT NOT NULL, page INTEGER);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source, start);
"""


def connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    con.executescript(SCHEMA)
    return con


def chunk_ids_of(con: sqlite3.Connection, sources: Iterable[str]) -> list[str]:
    out: list[str] = []
    for s in sources:
        out += [r[0] for r in con.execute("SELECT id FROM chunks WHERE source = ?", (s,))]
    return out


def delete_documents(con: sqlite3.Connection, sources: Iterable[str]) -> None:
    for s in sources:
        con.execute("DELETE FROM chunks WHERE source = ?", (s,))
        con.execute("DELETE FROM documents WHERE path = ?", (s,))


def insert_document(con: sqlite3.Connection, doc: Document, chunks: list[Chunk], indexed_at: str) -> None:
    con.execute(
        "INSERT OR REPLACE INTO documents VALUES (?,?,?,?,?,?,?,?)",
        (doc.path, doc.sha256, doc.title, doc.text,
         json.dumps([[s.start, s.level, s.title] for s in doc.sections]), json.dumps(list(doc.pages)),
         len(chunks), indexed_at))
    con.executemany(
        "INSERT OR REPLACE INTO chunks VALUES (?,?,?,?,?,?,?)",
        [(c.id, c.source, c.start, c.end, c.text, json.dumps(list(c.headings)), c.page) for c in chunks])


def read_documents(con: sqlite3.Connection) -> dict[str, tuple[Document, int, str]]:
    out = {}
    for path, sha, title, text, sections, pages, n, at in con.execute("SELECT * FROM documents"):
        secs = tuple(Section(int(a), int(b), str(c)) for a, b, c in json.loads(sections))
        out[path] = (Document(path, text, sha, title, secs, tuple(json.loads(pages))), int(n), at)
    return out


def count_chunks(con: sqlite3.Connection) -> int:
    return int(con.execute("SELECT count(*) FROM chunks").fetchone()[0])


def titles(con: sqlite3.Connection) -> dict[str, str]:
    return {path: title for path, title in con.execute("SELECT path, title FROM documents")}


def iter_chunks(con: sqlite3.Connection) -> Iterator[Chunk]:
    rows = con.execute("SELECT id, source, start, end, text, headings, page FROM chunks ORDER BY source, start")
    for i, s, a, b, t, h, p in rows:
        yield Chunk(i, s, a, b, t, tuple(json.loads(h)), p)


def read_chunks(con: sqlite3.Connection) -> list[Chunk]:
    rows = con.execute("SELECT id, source, start, end, text, headings, page FROM chunks ORDER BY source, start")
    return [Chunk(i, s, a, b, t, tuple(json.loads(h)), p) for i, s, a, b, t, h, p in rows]
