"""The store seam: where an index lives and the few things reading and writing one need. `local` is the
folder of segments under `index_dir` (the default, zero configuration); a `postgresql://` URL keeps the
same index in PostgreSQL + pgvector, shared by many servers. Fusion, near-duplicate removal, merging and
answers sit above this seam and never know which store answered."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..records import Chunk, Document
from .manifest import Manifest

if TYPE_CHECKING:
    from ..embed import Embedder
    from ..settings import Settings
    from .fill import FillReport
    from .reader import DocInfo
    from .report import BuildReport

Key = int  # a chunk, as the reader that returned it names it


class Reader(Protocol):
    """What the Retriever and the answerers read: rankings by key, then the chunks and texts of the keys."""

    manifest: Manifest
    documents: Mapping[str, Document]
    doc_texts: Mapping[str, str]

    @property
    def dense_index(self) -> str: ...
    @property
    def doc_infos(self) -> tuple[DocInfo, ...]: ...
    def bm25(self, terms: Sequence[str], k: int) -> list[tuple[Key, float]]: ...
    def term_counts(self, terms: Sequence[str]) -> tuple[dict[str, int], int]: ...  # (df per term, chunks)
    def dense(self, queries: np.ndarray, k: int) -> list[list[tuple[Key, float]]]: ...
    def chunks(self, keys: Sequence[Key]) -> dict[Key, Chunk]: ...
    def vectors(self, keys: Sequence[Key]) -> tuple[np.ndarray, np.ndarray]: ...
    def close(self) -> None: ...


class Store(Protocol):
    """Open, build and maintain one index."""

    def describe(self) -> str: ...  # for messages: a folder, or a URL with its password masked
    def recorded(self) -> Manifest | None: ...  # the live index's manifest, None when there is none
    def open(self, wanted: Manifest | None = None) -> Reader: ...
    def build(self, settings: Settings, **kwargs: Any) -> BuildReport: ...
    def fill(self, settings: Settings, embedder: Embedder, **kwargs: Any) -> FillReport: ...
    def optimize(self, settings: Settings) -> list[str]: ...


class LocalStore:
    """The segments under index_dir: the code in build.py, reader.py and fill.py, unchanged."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir

    def describe(self) -> str:
        return str(self.index_dir)

    def recorded(self) -> Manifest | None:
        from .recorded import recorded_manifest

        return recorded_manifest(self.index_dir)

    def open(self, wanted: Manifest | None = None) -> Reader:
        from .reader import open_index

        return open_index(self.index_dir, wanted=wanted)

    def build(self, settings: Settings, **kwargs: Any) -> BuildReport:
        from .build import build_local

        return build_local(settings, **kwargs)

    def fill(self, settings: Settings, embedder: Embedder, **kwargs: Any) -> FillReport:
        from .build import fill_local

        return fill_local(settings, embedder, **kwargs)

    def optimize(self, settings: Settings) -> list[str]:
        from .build import optimize_local

        return optimize_local(settings)


class PgStore:
    """The index in a PostgreSQL database with pgvector (pg/): one connection pool per store."""

    def __init__(self, url: str, lexical: str = "bm25", ann_threshold: int = 0) -> None:
        from .pg.db import Database

        self.db = Database(url)
        self.lexical = lexical
        self.ann_threshold = ann_threshold

    def describe(self) -> str:
        return self.db.shown

    def recorded(self) -> Manifest | None:
        from .pg.reader import read_manifest
        from .pg.schema import applied

        with self.db.connection() as conn:
            if applied(conn) == 0:
                return None
            return read_manifest(conn)

    def open(self, wanted: Manifest | None = None) -> Reader:
        from .pg.reader import PgReader

        return PgReader(self.db, wanted, self.lexical, self.ann_threshold)

    def build(self, settings: Settings, **kwargs: Any) -> BuildReport:
        from .pg.writer import build_pg

        return build_pg(self.db, settings, **kwargs)

    def fill(self, settings: Settings, embedder: Embedder, **kwargs: Any) -> FillReport:
        from .fill import FillReport

        return FillReport()  # vectors are committed with their document: none is ever missing

    def optimize(self, settings: Settings) -> list[str]:
        with self.db.connection() as conn:
            conn.execute("VACUUM (ANALYZE) chunks")
            conn.execute("VACUUM (ANALYZE) postings")
        return ["vacuumed and analyzed the chunks and postings tables"]

    def close(self) -> None:
        self.db.close()


_stores: dict[tuple[str, str, int], Store] = {}
_stores_lock = threading.Lock()


def store_for(settings: Settings) -> Store:
    """The store `settings.store` names; one PostgreSQL store (and connection pool) per URL per process."""
    if settings.store == "local":
        return LocalStore(settings.index_dir)
    key = (settings.store, settings.pg_lexical, settings.ann_threshold)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = PgStore(settings.store, settings.pg_lexical, settings.ann_threshold)
        return store


def close_stores() -> None:
    """Close the connection pools of the PostgreSQL stores this process opened (tests, shutdown)."""
    with _stores_lock:
        for store in _stores.values():
            getattr(store, "close", lambda: None)()
        _stores.clear()
