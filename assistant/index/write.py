"""Writing an update: new and changed documents into new segments, stale rows into deletion files, and a
generation naming the result. Nothing already on disk is rewritten."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..chunk import chunk_document, embedding_text
from ..embed import Embedder, LazyEmbedder
from ..errors import DocumentError
from ..load import Skipped, SourceFile, load_file
from ..records import Document
from ..settings import Settings
from . import layout
from .commit import publish_manifest, tag
from .embcache import FILE
from .fill import PartBuffer, cached, embed_texts, open_cache, prune_cache
from .manifest import Manifest
from .reader import IndexReader, open_index
from .report import BuildReport
from .segment import SegmentMeta, SegmentWriter, save_array

Progress = Callable[[str, int, int, str], None]
SEGMENT_ROWS = 250_000  # chunks per segment a build writes: bounds the memory of a build


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_generation(settings: Settings, emb: Embedder, wanted: Manifest, old: Manifest | None,
                      old_reader: IndexReader | None, full: bool, by_rel: dict[str, SourceFile],
                      added: tuple[str, ...], changed: tuple[str, ...], removed: tuple[str, ...],
                      unchanged: tuple[str, ...], skipped: list[Skipped], timings: dict[str, float],
                      progress: Progress | None, t0: float, cancel: threading.Event | None = None,
                      old_docs: dict[str, dict] | None = None, targeted: set[str] | None = None) -> BuildReport:
    """Write the new and changed documents as new segments, mark the stale ones deleted in theirs, and
    publish a generation naming the result. Nothing already on disk is rewritten."""
    index_dir = settings.index_dir
    keep_old = not full and old is not None and old_reader is not None
    metas = old.segment_metas() if keep_old else []  # type: ignore[union-attr]
    old_docs = (old_docs or {}) if keep_old else {}
    now = timestamp()

    # Load and chunk the new and changed documents into new segments; a document that fails is skipped (a
    # changed one keeps its previous version, so nothing is lost).
    t = time.perf_counter()
    todo = [*added, *changed]
    kept: list[str] = []
    written: dict[str, str] = {}  # rel -> sha256 of what went in
    new: list[tuple[SegmentMeta, list[int], list[str]]] = []  # (meta, rows, embedding texts) per new segment
    writer: SegmentWriter | None = None
    rows: list[int] = []
    texts: list[str] = []
    folders: list[Path] = []
    try:
        for i, rel in enumerate(todo):
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
            if writer is not None and writer.rows >= SEGMENT_ROWS:
                new.append((writer.finish(), rows, texts))
                writer, rows, texts = None, [], []
            if writer is None:
                folders.append(layout.new_segment(index_dir))
                writer = SegmentWriter(folders[-1])
            src = by_rel[rel]
            rows += list(writer.add(doc, chunks, now, (src.size, src.mtime_ns)))
            texts += [embedding_text(doc, c) for c in chunks]
            written[rel] = doc.sha256
        if writer is not None:
            new.append((writer.finish(), rows, texts))
            writer = None
        timings["load+chunk"] = time.perf_counter() - t
        if progress:
            progress("reading", len(todo), len(todo), "")

        # Stale rows (changed and removed documents) are deleted in their segments: a new deletion file
        # for each segment touched, the segment itself unchanged.
        stale = [r for r in (*changed, *removed) if r not in kept and r in old_docs]
        if stale and old_reader is not None:
            _delete(old_reader, metas, stale, old_docs)

        # Vectors: what the embedding cache knows (a killed build's work, text repeated across pages, text a
        # settings change left as it was) goes in at once. A small rest is embedded now; a large one is
        # left pending, so the index is searchable (lexically, and densely where vectors exist) as soon as
        # it is written, and fill_vectors embeds it behind.
        t = time.perf_counter()
        all_texts = [tx for _, _, txs in new for tx in txs]
        prepare = getattr(emb, "prepare", None)
        if prepare is not None and all_texts:
            prepare(all_texts)  # an int8 export, if one must be made, is calibrated on these
        dimension = old.dimension if keep_old and old is not None and old.dimension else (
            emb.dimension if new or not old else old.dimension)
        first_new = len(metas)
        metas += [m for m, _, _ in new]
        pending = embedded = 0
        if new:
            buffer = PartBuffer(index_dir / layout.SEGMENTS, metas)
            cache = open_cache(index_dir, emb, dimension)
            try:
                todo_at: list[tuple[int, int]] = []
                todo_texts: list[str] = []
                for j, (_, seg_rows, seg_texts) in enumerate(new):
                    have, vecs, missing = cached(cache, seg_texts)
                    buffer.add(first_new + j, np.array([seg_rows[i] for i in have]), vecs)
                    todo_at += [(first_new + j, seg_rows[i]) for i in missing]
                    todo_texts += [seg_texts[i] for i in missing]
                if len(todo_texts) <= settings.progressive_min_chunks:
                    def take(pos: list[int], vecs: np.ndarray) -> None:
                        for p, v in zip(pos, vecs, strict=True):
                            buffer.add(todo_at[p][0], np.array([todo_at[p][1]]), v[None, :])

                    embedded = embed_texts(cache, emb, todo_texts, take, progress, cancel)
                    pending = len(todo_texts) - embedded
                else:
                    pending = len(todo_texts)
                buffer.flush()
            finally:
                cache.close()
            embedded = len(all_texts) - pending
        timings["embed"] = time.perf_counter() - t

        t = time.perf_counter()
        lazy_unloaded = isinstance(emb, LazyEmbedder) and not emb.loaded
        max_seq = old.max_seq_length if old is not None and keep_old and lazy_unloaded else emb.max_tokens
        fresh = replace(wanted, dimension=dimension, max_seq_length=max_seq,
                        ann_threshold=settings.ann_threshold, ann_nprobe=settings.ann_nprobe).with_segments(metas)
        live_sha = {r: v["sha256"] for r, v in old_docs.items() if r not in stale} | written
        fresh.skipped = {sk.rel: {"sha256": by_rel[sk.rel].sha256, "reason": sk.reason, "size": by_rel[sk.rel].size,
                                  "mtime_ns": by_rel[sk.rel].mtime_ns} for sk in skipped
                         if sk.rel in by_rel and live_sha.get(sk.rel) != by_rel[sk.rel].sha256}
        if targeted is not None and old is not None:  # the other files' failures are still remembered
            fresh.skipped = {r: v for r, v in old.skipped.items() if r not in targeted} | fresh.skipped
        docs_dir = settings.docs_dir.resolve()
        fresh.docs_dir = str(docs_dir)
        fresh.docs_dir_from_index = os.path.relpath(docs_dir, index_dir.resolve())
        fresh.built_at = now
        fresh.build_seconds = round(time.perf_counter() - t0, 3)
        publish_manifest(index_dir, fresh)
    except BaseException:
        if writer is not None:
            writer.abort()
        for f in folders:  # segments of this build that no generation names
            shutil.rmtree(f, ignore_errors=True)
        raise
    if pending == 0 and (index_dir / FILE).exists():
        _prune(settings, emb, index_dir, fresh)
    timings["write"] = time.perf_counter() - t

    ok_added = tuple(r for r in added if r in written)
    ok_changed = tuple(r for r in changed if r in written)
    return BuildReport(index_dir, ok_added, ok_changed, (*unchanged, *kept), removed, tuple(skipped),
                       fresh.chunks, embedded, time.perf_counter() - t0, timings=timings, pending=pending)


def _delete(reader: IndexReader, metas: list[SegmentMeta], stale: list[str], old_docs: dict[str, dict]) -> None:
    """Mark the rows of the `stale` documents deleted: one new deletion file per segment touched."""
    by_seg: dict[int, list[range]] = {}
    for rel in stale:
        si = old_docs[rel]["segment"]
        rows = reader.segments[si].document_rows(rel)
        if rows is not None:
            by_seg.setdefault(si, []).append(rows)
    for si, ranges in by_seg.items():
        seg, meta = reader.segments[si], metas[si]
        gone = np.concatenate([np.arange(r.start, r.stop, dtype=np.int32) for r in ranges])
        deleted = np.union1d(seg.deleted_rows(), gone).astype(np.int32)
        name = f"deleted-{tag()}.npy"
        save_array(seg.folder / name, deleted)
        meta.deleted = name
        meta.deleted_rows = len(deleted)
        meta.deleted_length += float(np.asarray(seg.doclen())[gone].astype(np.float64).sum())
        meta.deleted_vectors += int(seg.has_vector()[gone].sum()) if seg.parts else 0
        meta.deleted_docs += len(ranges)


def _prune(settings: Settings, emb: Embedder, index_dir: Path, manifest: Manifest) -> None:
    cache = open_cache(index_dir, emb, manifest.dimension)
    try:
        def texts() -> list[str]:
            reader = open_index(index_dir)
            try:
                return [embedding_text(Document(c.source, "", "", title), c) for c, title in reader.iter_chunks()]
            finally:
                reader.close()

        prune_cache(settings, cache, manifest.chunks, texts)
    finally:
        cache.close()
