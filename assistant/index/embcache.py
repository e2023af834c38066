"""The embedding cache: vectors by (model, backend, text) in one SQLite file beside the generations.

A build writes every batch it embeds here as soon as it is encoded, so a build that is killed resumes
where it stopped; texts repeated across pages are embedded once; a rebuild after a chunk-setting change
embeds only the texts that are new. The key is a hash of the namespace (model and backend) and the exact
text the model sees, so a vector can never describe another text. Bounded: pruned after each build to
the texts the live index holds, and to `max_mb` beyond that.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

FILE = "embeddings.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vec BLOB NOT NULL, used INTEGER NOT NULL)
  WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_CHUNK = 500  # keys per SELECT ... IN (...)


def text_key(namespace: str, text: str) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(namespace.encode("utf-8"))
    h.update(b"\x1f")
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.digest()


def select_vectors(con: sqlite3.Connection, keys: Sequence[bytes], dimension: int) -> dict[bytes, np.ndarray]:
    """The vectors of `keys` held in the `vectors` table of `con` (those present, of the right shape)."""
    out: dict[bytes, np.ndarray] = {}
    for i in range(0, len(keys), _CHUNK):
        part = list(keys[i:i + _CHUNK])
        marks = ",".join("?" * len(part))
        for key, blob in con.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", part):
            vec = np.frombuffer(blob, dtype=np.float32)
            if vec.shape == (dimension,):
                out[bytes(key)] = vec
    return out


class EmbeddingCache:
    def __init__(self, index_dir: Path, namespace: str, dimension: int, file: str = FILE, wal: bool = True) -> None:
        index_dir.mkdir(parents=True, exist_ok=True)
        self.path = index_dir / file
        self.namespace = namespace
        self.dimension = dimension
        self._lock = threading.Lock()
        self._con = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
        # 16 KiB pages hold a 1.5 KiB vector row inline; at SQLite's default 4 KiB each row spilled into an
        # overflow page and took 4.7 KB on disk (effective for a new file only).
        self._con.execute("PRAGMA page_size = 16384")
        # WAL lets a build read while it writes; a file that query processes read (sentvec.py) keeps a rollback
        # journal instead, since a WAL reader creates -wal and -shm files: a query must write nothing.
        self._con.execute(f"PRAGMA journal_mode={'WAL' if wal else 'DELETE'}")
        self._con.execute("PRAGMA synchronous=NORMAL")
        self._con.executescript(_SCHEMA)
        # Opening reads no row: "used" ticks are microseconds since the epoch (monotonic within a process),
        # and the row count is kept in `meta` (counted once for a cache written before it was kept).
        self._tick = time.time_ns() // 1000
        row = self._con.execute("SELECT value FROM meta WHERE name = 'rows'").fetchone()
        if row is None:
            n = int(self._con.execute("SELECT count(*) FROM vectors").fetchone()[0])
            self._con.execute("INSERT OR REPLACE INTO meta VALUES ('rows', ?)", (n,))
            self._rows = n
        else:
            self._rows = int(row[0])

    def _next_tick(self) -> int:
        self._tick = max(self._tick + 1, time.time_ns() // 1000)
        return self._tick

    def keys(self, texts: Sequence[str]) -> list[bytes]:
        return [text_key(self.namespace, t) for t in texts]

    def get(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors of `keys` (those present), marked as used now."""
        unique = list(dict.fromkeys(keys))
        with self._lock:
            tick = self._next_tick()
            out = select_vectors(self._con, unique, self.dimension)
            for i in range(0, len(unique), _CHUNK):
                part = unique[i:i + _CHUNK]
                marks = ",".join("?" * len(part))
                self._con.execute(f"UPDATE vectors SET used = ? WHERE key IN ({marks})", [tick, *part])
        return out

    def put(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store vectors (one row per key) durably: a build killed after this keeps them."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._lock:
            tick = self._next_tick()
            self._con.execute("BEGIN")
            before = self._con.total_changes
            # A key's vector never changes (same model, backend and text): a key already there stays.
            self._con.executemany("INSERT OR IGNORE INTO vectors VALUES (?, ?, ?)",
                                  [(k, v.tobytes(), tick) for k, v in zip(keys, vectors, strict=True)])
            self._set_rows(self._rows + self._con.total_changes - before)
            self._con.execute("COMMIT")

    def _set_rows(self, n: int) -> None:
        self._con.execute("INSERT OR REPLACE INTO meta VALUES ('rows', ?)", (n,))
        self._rows = n

    def __len__(self) -> int:
        return self._rows

    def rows_within(self, max_mb: float) -> int:
        """How many vectors `max_mb` holds (the bound prune() enforces)."""
        return int(max_mb * 1024 * 1024 / (self.dimension * 4 + 48))

    def prune(self, keep: Iterable[bytes], max_mb: float) -> int:
        """Delete the vectors of texts the live index does not hold, then the least recently used beyond
        `max_mb`; returns how many were deleted."""
        keep_set = set(keep)
        with self._lock:
            self._con.execute("BEGIN")
            self._con.execute("CREATE TEMP TABLE IF NOT EXISTS keep (key BLOB PRIMARY KEY) WITHOUT ROWID")
            self._con.execute("DELETE FROM keep")
            self._con.executemany("INSERT OR IGNORE INTO keep VALUES (?)", ((k,) for k in keep_set))
            gone = self._con.execute("DELETE FROM vectors WHERE key NOT IN (SELECT key FROM keep)").rowcount
            most = self.rows_within(max_mb)
            total = int(self._con.execute("SELECT count(*) FROM vectors").fetchone()[0])
            if total > most:
                gone += self._con.execute(
                    "DELETE FROM vectors WHERE key IN (SELECT key FROM vectors ORDER BY used LIMIT ?)",
                    (total - most,)).rowcount
            self._con.execute("DELETE FROM keep")
            self._set_rows(int(self._con.execute("SELECT count(*) FROM vectors").fetchone()[0]))
            self._con.execute("COMMIT")
        return gone

    def trim(self, max_mb: float) -> int:
        """Delete the least recently used vectors beyond `max_mb`; returns how many were deleted."""
        most = self.rows_within(max_mb)
        with self._lock:
            if self._rows <= most:
                return 0
            self._con.execute("BEGIN")
            gone = self._con.execute(
                "DELETE FROM vectors WHERE key IN (SELECT key FROM vectors ORDER BY used LIMIT ?)",
                (self._rows - most,)).rowcount
            self._set_rows(int(self._con.execute("SELECT count(*) FROM vectors").fetchone()[0]))
            self._con.execute("COMMIT")
        return gone

    def close(self) -> None:
        with self._lock:
            self._con.close()
