"""Dense vectors filled in behind a searchable index.

A build writes its segments first, with the vectors the embedding cache already has; the rest are
embedded here in slices, each slice stored in the cache at once (so a killed build loses at most one
slice), and every `publish_every` seconds (and at the end) the new vectors are written as a new part of
their segments and a generation naming them is published. Only the new vectors are written: the cost
of a publish is what it adds. Every generation is complete as a lexical index and valid as a partial
dense one. Cancelling (an Event, or Ctrl-C) stops at a slice boundary and publishes what is done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..chunk import embedding_text
from ..embed import Embedder
from ..records import Document
from ..settings import Settings
from . import layout
from .commit import publish_manifest, tag
from .embcache import EmbeddingCache
from .manifest import Manifest
from .reader import open_generation
from .segment import SegmentMeta, load_array, write_part

Progress = Callable[[str, int, int, str], None]
EMBED_SLICE = 256  # texts per embed call: the unit of progress, of cancelling and of what a kill can lose
PUBLISH_EVERY = 20.0  # seconds between generations published while vectors fill in
MAX_PARTS = 8  # vector parts per segment before they are rewritten as one


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


def cached(cache: EmbeddingCache, texts: Sequence[str]) -> tuple[list[int], np.ndarray, list[int]]:
    """(positions with a cached vector, their vectors, positions still to embed)."""
    keys = cache.keys(texts)
    got = cache.get(keys)
    have = [i for i, k in enumerate(keys) if k in got]
    vecs = np.stack([got[keys[i]] for i in have]) if have else np.zeros((0, cache.dimension), np.float32)
    return have, vecs, [i for i, k in enumerate(keys) if k not in got]


def embed_texts(cache: EmbeddingCache, emb: Embedder, texts: Sequence[str],
                on_slice: Callable[[list[int], np.ndarray], None], progress: Progress | None = None,
                cancel: threading.Event | None = None) -> int:
    """Embed `texts`: identical texts once, longest first in slices (little padding), each slice cached as
    soon as it is encoded and handed to `on_slice(positions, vectors)`. Returns how many texts the model
    encoded; stops early when `cancel` is set."""
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
        vecs = np.asarray(emb.embed(part, batch_size=64), dtype=np.float32)
        cache.put(cache.keys(part), vecs)
        pos = [i for t in part for i in unique[t]]
        rep = [j for j, t in enumerate(part) for _ in unique[t]]
        on_slice(pos, vecs[rep])
        done += len(part)
    if progress:
        progress("embedding", done, len(order), "")
    return done


class PartBuffer:
    """Vectors embedded for rows of several segments, written as one new part per segment on flush."""

    def __init__(self, root: Path, metas: list[SegmentMeta]) -> None:
        self.root = root
        self.metas = metas
        self._rows: dict[int, list[np.ndarray]] = {}
        self._vecs: dict[int, list[np.ndarray]] = {}

    def add(self, seg: int, rows: np.ndarray, vectors: np.ndarray) -> None:
        if len(rows):
            self._rows.setdefault(seg, []).append(np.asarray(rows, dtype=np.int32))
            self._vecs.setdefault(seg, []).append(np.asarray(vectors, dtype=np.float32))

    def __bool__(self) -> bool:
        return bool(self._rows)

    def flush(self) -> None:
        """Write the buffered vectors as new parts; the metas then name them. A segment that would have
        MAX_PARTS parts gets one part with all its vectors instead (so a long fill leaves few files)."""
        for si in sorted(self._rows):
            meta = self.metas[si]
            folder = self.root / meta.name
            rows, vecs = np.concatenate(self._rows[si]), np.concatenate(self._vecs[si])
            if len(meta.parts) + 1 >= MAX_PARTS:
                rows = np.concatenate([*(load_array(folder / f"rows-{p}.npy") for p, _ in meta.parts), rows])
                vecs = np.concatenate([*(load_array(folder / f"vectors-{p}.npy") for p, _ in meta.parts), vecs])
                meta.parts = [write_part(folder, tag(), rows, vecs)]
            else:
                meta.parts = [*meta.parts, write_part(folder, tag(), rows, vecs)]
        self._rows.clear()
        self._vecs.clear()


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
    reader = open_generation(index_dir, gen, None)
    try:
        where: list[tuple[int, int]] = []  # (segment, row) of each text to embed
        texts: list[str] = []
        for si, seg in enumerate(reader.segments):
            has = seg.has_vector() if seg.parts else None
            for row, chunk, title in seg.iter_chunks():
                if has is None or not has[row]:
                    where.append((si, row))
                    texts.append(embedding_text(Document(chunk.source, "", "", title), chunk))
    finally:
        reader.close()
    prepare = getattr(emb, "prepare", None)
    if prepare is not None and texts:
        prepare(texts)
    metas = manifest.segment_metas()
    buffer = PartBuffer(index_dir / layout.SEGMENTS, metas)
    cache = open_cache(index_dir, emb, manifest.dimension)
    state = {"manifest": manifest, "last": time.monotonic()}

    def take(positions: Sequence[int], vectors: np.ndarray) -> None:
        by_seg: dict[int, list[int]] = {}
        for j, p in enumerate(positions):
            by_seg.setdefault(where[p][0], []).append(j)
        for si, js in by_seg.items():
            buffer.add(si, np.array([where[positions[j]][1] for j in js]), vectors[js])

    def publish() -> None:
        if not buffer:
            return
        buffer.flush()
        fresh = state["manifest"].with_segments(metas)
        publish_manifest(index_dir, fresh)
        state["manifest"], state["last"] = fresh, time.monotonic()
        if on_publish is not None:
            on_publish()

    def on_slice(positions: list[int], vectors: np.ndarray) -> None:
        take(positions, vectors)
        if time.monotonic() - state["last"] >= publish_every:
            publish()

    embedded = 0
    try:
        have, vecs, todo = cached(cache, texts)
        take(have, vecs)
        try:
            embedded = embed_texts(cache, emb, [texts[i] for i in todo],
                                   lambda pos, v: on_slice([todo[p] for p in pos], v), progress, cancel)
        finally:
            publish()  # also when interrupted: what was embedded is kept
    finally:
        cache.close()
    return FillReport(embedded, len(have), state["manifest"].pending, time.perf_counter() - t0)


def prune_cache(settings: Settings, cache: EmbeddingCache, reader_chunks: int,
                texts: Callable[[], Sequence[str]]) -> int:
    """Keep the cached vectors of the live index's texts (bounded by embed_cache_mb), drop the rest; only
    when the cache has grown past the index by a quarter or past its bound, so small updates stay cheap."""
    rows = len(cache)
    # The bound is checked on the row count (what prune() enforces), not the file size: a SQLite file does
    # not shrink after a delete, and a size check would prune again on every update.
    if rows <= max(64, reader_chunks * 5 // 4) and rows <= cache.rows_within(settings.embed_cache_mb):
        return 0
    # Down to 90 % of the bound, so that the next small updates have room and do not prune again.
    return cache.prune(cache.keys(texts()), settings.embed_cache_mb * 0.9)
