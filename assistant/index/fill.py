"""Dense vectors filled in behind a searchable index.

A build writes its chunks first, with the vectors the embedding cache already has; the rest are embedded
here in slices, each slice stored in the cache at once (so a killed build loses at most one slice), and a
new generation with more vectors is published every `publish_every` seconds and at the end. Every
generation is complete as a lexical index and valid as a partial dense one: readers never see a
half-written file. Cancelling (an Event, or Ctrl-C) stops at a slice boundary and publishes what is done.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..chunk import embedding_text
from ..embed import Embedder
from ..records import Document
from ..settings import Settings
from . import chunkdb, layout
from .embcache import EmbeddingCache
from .manifest import Manifest
from .vectors import FaissStore, faiss_id

Progress = Callable[[str, int, int, str], None]
EMBED_SLICE = 256  # texts per embed call: the unit of progress, of cancelling and of what a kill can lose
PUBLISH_EVERY = 20.0  # seconds between generations published while vectors fill in


@dataclass(frozen=True)
class FillReport:
    embedded: int = 0  # texts encoded by the model
    cached: int = 0  # vectors taken from the embedding cache
    pending: int = 0  # chunks still without a vector (cancelled)
    seconds: float = 0.0


def backend_of(emb: Embedder) -> str:
    return str(getattr(emb, "backend", "torch"))


def open_cache(index_dir: Path, emb: Embedder, dimension: int) -> EmbeddingCache:
    return EmbeddingCache(index_dir, f"{emb.model_id}|{backend_of(emb)}|{dimension}", dimension)


def add_cached(store: FaissStore, cache: EmbeddingCache, ids: np.ndarray, texts: Sequence[str]) -> list[int]:
    """Add the cached vectors of `texts` to `store`; the positions of the texts still to embed."""
    keys = cache.keys(texts)
    got = cache.get(keys)
    have = [i for i, k in enumerate(keys) if k in got]
    if have:
        store.add(ids[have], np.stack([got[keys[i]] for i in have]))
    return [i for i, k in enumerate(keys) if k not in got]


def embed_into(store: FaissStore, cache: EmbeddingCache, emb: Embedder, ids: np.ndarray, texts: Sequence[str],
               progress: Progress | None = None, cancel: threading.Event | None = None,
               on_slice: Callable[[], None] | None = None) -> int:
    """Embed `texts` (ids[i] is the FAISS id of texts[i]) into `store` and the cache: identical texts once,
    longest first in slices (little padding), each slice cached as soon as it is encoded. Returns how many
    texts the model encoded; stops early when `cancel` is set."""
    unique: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        unique.setdefault(t, []).append(i)
    order = sorted(unique, key=len, reverse=True)
    done, started = 0, time.perf_counter()
    for s in range(0, len(order), EMBED_SLICE):
        if cancel is not None and cancel.is_set():
            break
        if progress:
            progress("embedding", done, len(order), f"{done / max(time.perf_counter() - started, 1e-9):.1f}/s")
        part = order[s:s + EMBED_SLICE]
        vecs = emb.embed(part, batch_size=64)
        cache.put(cache.keys(part), vecs)
        rows = [(i, v) for t, v in zip(part, vecs, strict=True) for i in unique[t]]
        store.add(ids[[i for i, _ in rows]], np.stack([v for _, v in rows]))
        done += len(part)
        if on_slice is not None:
            on_slice()
    if progress:
        progress("embedding", done, len(order), "")
    return done


def missing(con: object, store: FaissStore) -> tuple[np.ndarray, list[str]]:
    """FAISS ids and embedding texts of the chunks that have no vector in `store`."""
    have = set(store.ids().tolist())
    titles = chunkdb.titles(con)
    ids: list[int] = []
    texts: list[str] = []
    for chunk in chunkdb.iter_chunks(con):
        fid = faiss_id(chunk.id)
        if fid not in have:
            ids.append(fid)
            texts.append(embedding_text(Document(chunk.source, "", "", titles.get(chunk.source, "")), chunk))
    return np.array(ids, dtype=np.int64), texts


def republish(index_dir: Path, gen: Path, store: FaissStore,
              manifest: Manifest) -> Manifest:
    """A new generation with the same chunks as `gen` (the SQLite file is hard-linked: generations are
    immutable) and the vectors of `store`; made live atomically."""
    tmp = layout.new_generation(index_dir)
    try:
        try:
            os.link(gen / layout.CHUNKS, tmp / layout.CHUNKS)
        except OSError:
            shutil.copyfile(gen / layout.CHUNKS, tmp / layout.CHUNKS)
        store.save(tmp / layout.VECTORS)
        fresh = replace(manifest, vectors=len(store))
        fresh.write(tmp / layout.MANIFEST)
        final = layout.publish(index_dir, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    layout.collect_garbage(index_dir, keep=final)
    return fresh


def fill_vectors_locked(settings: Settings, emb: Embedder, *, progress: Progress | None = None,
                        cancel: threading.Event | None = None, on_publish: Callable[[], None] | None = None,
                        publish_every: float = PUBLISH_EVERY) -> FillReport:
    """Embed the chunks of the live generation that have no vector yet. The caller holds the writer lock."""
    t0 = time.perf_counter()
    index_dir = settings.index_dir
    gen = layout.current_generation(index_dir)
    if gen is None:
        return FillReport()
    manifest = Manifest.read(gen / layout.MANIFEST)
    if manifest.pending == 0:
        return FillReport()
    store = FaissStore.load(gen / layout.VECTORS)
    con = chunkdb.connect(gen / layout.CHUNKS)
    try:
        ids, texts = missing(con, store)
    finally:
        con.close()
    prepare = getattr(emb, "prepare", None)
    if prepare is not None and texts:
        prepare(texts)
    cache = open_cache(index_dir, emb, store.dimension)
    state = {"gen": gen, "manifest": manifest, "last": time.monotonic(), "published": len(store)}

    def publish() -> None:
        if len(store) == state["published"]:
            return
        state["manifest"] = republish(index_dir, state["gen"], store, state["manifest"])
        state["gen"] = layout.current_generation(index_dir)
        state["last"], state["published"] = time.monotonic(), len(store)
        if on_publish is not None:
            on_publish()

    def maybe_publish() -> None:
        if time.monotonic() - state["last"] >= publish_every:
            publish()

    try:
        todo = add_cached(store, cache, ids, texts)
        cached = len(ids) - len(todo)
        embedded = 0
        try:
            embedded = embed_into(store, cache, emb, ids[todo], [texts[i] for i in todo], progress, cancel,
                                  on_slice=maybe_publish)
        finally:
            publish()  # also when interrupted: what was embedded is kept
        pending = state["manifest"].pending
        if pending == 0:
            with contextlib.suppress(Exception):
                prune_cache(settings, cache, state["gen"], state["manifest"].chunks)
    finally:
        cache.close()
    return FillReport(embedded, cached, pending, time.perf_counter() - t0)


def prune_cache(settings: Settings, cache: EmbeddingCache, gen: Path, chunks: int) -> int:
    """Keep the cached vectors of the live index's texts (bounded by embed_cache_mb), drop the rest; only
    when the cache has grown past the index by a quarter or past its bound, so small updates stay cheap."""
    if len(cache) <= max(64, chunks * 5 // 4) and cache.path.stat().st_size <= settings.embed_cache_mb * 1024 * 1024:
        return 0
    con = chunkdb.connect(gen / layout.CHUNKS)
    try:
        titles = chunkdb.titles(con)
        keep = cache.keys([embedding_text(Document(c.source, "", "", titles.get(c.source, "")), c)
                           for c in chunkdb.iter_chunks(con)])
    finally:
        con.close()
    return cache.prune(keep, settings.embed_cache_mb)
