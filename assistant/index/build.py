"""Build or update the index of a documents folder: incremental by content hash, crash-safe by generations."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .. import __version__
from ..chunk import CHUNKER_VERSION, chunk_document, embedding_text
from ..embed import Embedder, LazyEmbedder, embedder_for
from ..errors import DocumentError, IndexMismatchError
from ..load import SUPPORTED_SUFFIXES, Skipped, SourceFile, load_file, scan_folder, scan_paths
from ..records import Document
from ..settings import Settings
from ..tokens import ENCODING
from . import layout
from .commit import publish_manifest, tag
from .embcache import FILE
from .fill import PartBuffer, backend_of, cached, embed_texts, fill_vectors_locked, open_cache, prune_cache
from .manifest import FORMAT_VERSION, Manifest
from .merge import maintain
from .reader import IndexReader, _open_generation, open_index
from .segment import SegmentMeta, SegmentWriter, save_array

Progress = Callable[[str, int, int, str], None]  # (stage, done, total, item: a file being read, a rate)
SEGMENT_ROWS = 250_000  # chunks per segment a build writes: bounds the memory of a build


@dataclass(frozen=True)
class BuildReport:
    index_dir: Path
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    chunks: int = 0  # in the index after the build
    embedded: int = 0  # chunks embedded by this build
    seconds: float = 0.0
    rebuilt: bool = False
    reason: str = ""  # why everything was rebuilt
    pending: int = 0  # chunks still without a dense vector (searchable lexically; fill_vectors adds them)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def wrote(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.rebuilt)

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.changed)} changed", f"{len(self.unchanged)} unchanged",
                 f"{len(self.removed)} removed", f"{len(self.skipped)} skipped"]
        waiting = f", {self.pending} waiting for vectors" if self.pending else ""
        line = f"documents: {', '.join(parts)}; chunks: {self.chunks} ({self.embedded} embedded{waiting}); " \
               f"{self.seconds:.2f} s"
        return f"rebuilt everything ({self.reason}); {line}" if self.rebuilt else line


def wanted_manifest(settings: Settings, model_id: str, dimension: int = 0, max_seq: int = 0,
                    backend: str = "torch") -> Manifest:
    """The manifest an index built now with `settings` would have (before its documents are known)."""
    return Manifest(FORMAT_VERSION, __version__, model_id, dimension, max_seq, settings.chunk_tokens,
                    settings.chunk_overlap, CHUNKER_VERSION, ENCODING, backend=backend)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def build_index(settings: Settings, *, embedder: Embedder | None = None, rebuild: bool = False,
                progress: Progress | None = None, replace_folder: bool = False, wait: bool = True,
                cancel: threading.Event | None = None, paths: Sequence[str] | None = None) -> BuildReport:
    """Bring the index in `settings.index_dir` up to date with `settings.docs_dir`.

    Unchanged documents (same sha256) are not read again, nor are files that failed before and have not
    changed since; changed ones are re-chunked and re-embedded; deleted ones are removed. Other model or
    chunk settings rebuild everything (the report says why). An index built from another documents folder
    is refused (IndexMismatchError) unless `replace_folder`, which rebuilds it from this one. The new
    generation is written beside the live one and swapped in atomically, so a crash leaves the old index
    loadable. The embedding model is only loaded when something has to be embedded.

    Vectors the embedding cache holds are not computed again. When more than
    settings.progressive_min_chunks chunks need embedding, the index is published first without their
    vectors (searchable lexically at once), then they are filled in (`wait`), or left to fill_vectors
    (not `wait`; the report's `pending` says how many). `cancel` stops embedding at a slice boundary.

    `paths` (relative to the documents folder): look at these files only, added, changed or gone, and
    leave every other document as it is; an update then costs what those files cost, however large the
    folder (uploads and removals in the chat use it). Ignored when everything must be rebuilt.
    """
    t0 = time.perf_counter()
    index_dir = settings.index_dir
    docs_dir = settings.docs_dir.resolve()
    if not docs_dir.is_dir():  # before taking the lock or loading anything
        raise DocumentError(str(settings.docs_dir), "no such folder" if not docs_dir.exists() else "not a folder")
    with layout.writer_lock(index_dir):
        gen = layout.current_generation(index_dir)
        layout.collect_garbage(index_dir, keep=gen)  # leftovers of a build killed after its swap
        old = Manifest.read(gen / layout.MANIFEST) if gen else None
        built_from = old.built_from(index_dir) if old is not None else None
        other_folder = built_from is not None and built_from.resolve() != docs_dir
        if other_folder and not replace_folder:
            raise IndexMismatchError(
                f"index in {index_dir} was built from {built_from}, not {settings.docs_dir}: to index "
                f"{settings.docs_dir} there run `assistant index {settings.docs_dir} --index-dir {index_dir}` "
                f"(it replaces that index), or pass another --index-dir")
        model_id = embedder.model_id if embedder is not None else settings.model
        wanted = wanted_manifest(settings, model_id, backend=backend_of(embedder) if embedder is not None
                                 else settings.backend)
        reason = ""
        if rebuild:
            reason = "--rebuild asked for"
        elif old is None:
            reason = "no index yet" if gen is None else ""
        elif other_folder:
            reason = f"documents folder changed: index had {built_from}, now {settings.docs_dir}"
        elif old.build_key() != wanted.build_key():
            reason = "settings changed: " + "; ".join(old.differences(wanted))
        full = bool(reason) or old is None
        old_reader = None
        if not full and gen is not None:
            try:
                old_reader = _open_generation(index_dir, gen, None)
            except IndexMismatchError as e:  # segment files lost: start again rather than fail every build
                full, reason = True, f"index unreadable ({e})"
        targeted = paths is not None and old_reader is not None
        if old_reader is None:
            old_docs: dict[str, dict] = {}
        elif targeted:
            old_docs = old_reader.document_records(list(paths or ()))
        else:
            old_docs = old_reader.document_hashes()
        # Files whose size and mtime are those recorded are not read again (their hash stands).
        known: dict[str, tuple[int, int, str]] = {}
        if old_reader is not None and old is not None:
            known = {r: (int(v.get("size", 0)), int(v.get("mtime_ns", 0)), str(v["sha256"]))
                     for r, v in old.skipped.items()}
            known |= {r: (d["size"], d["mtime_ns"], d["sha256"]) for r, d in old_docs.items()}
        timings: dict[str, float] = {}
        try:
            if targeted:
                files, skipped, _ = scan_paths(settings.docs_dir, list(paths or ()), settings.max_file_mb, known)
            else:
                files, skipped = scan_folder(settings.docs_dir, settings.max_file_mb, known)
        except BaseException:
            if old_reader is not None:
                old_reader.close()
            raise
        timings["scan"] = time.perf_counter() - t0
        if not files and old is None:
            raise DocumentError(str(settings.docs_dir),
                                f"no documents to index (supported: {' '.join(SUPPORTED_SUFFIXES)}); "
                                "add files to the folder or pass --docs FOLDER"
                                + (f"; skipped: {_skipped_line(skipped)}" if skipped else ""))
        by_rel = {f.rel: f for f in files}
        try:
            return _update(settings, embedder, progress, cancel, wait, t0, old, old_reader, full, reason,
                           rebuild, by_rel, skipped, timings, old_docs, set(paths or ()) if targeted else None)
        finally:
            if old_reader is not None:
                old_reader.close()


def _update(settings: Settings, embedder: Embedder | None, progress: Progress | None,
            cancel: threading.Event | None, wait: bool, t0: float, old: Manifest | None,
            old_reader: IndexReader | None, full: bool, reason: str, rebuild: bool,
            by_rel: dict[str, SourceFile], skipped: list[Skipped], timings: dict[str, float],
            old_docs: dict[str, dict], targeted: set[str] | None) -> BuildReport:
    """`old_docs`: the indexed documents to compare with (only the `targeted` paths', when given)."""
    index_dir = settings.index_dir
    # Files that failed before and have not changed since are skipped again without being parsed (a
    # bad PDF would print the parser's complaints and load the model on every run otherwise).
    memo = {} if full or old is None else old.skipped
    failed_before = {r: memo[r]["reason"] for r in by_rel if r in memo and memo[r]["sha256"] == by_rel[r].sha256}
    skipped = sorted([*skipped, *(Skipped(r, why) for r, why in failed_before.items())], key=lambda sk: sk.rel)
    todo_rel = [r for r in by_rel if r not in failed_before]

    unchanged = tuple(r for r in todo_rel if r in old_docs and old_docs[r]["sha256"] == by_rel[r].sha256)
    changed = tuple(r for r in todo_rel if r in old_docs and old_docs[r]["sha256"] != by_rel[r].sha256)
    added = tuple(r for r in todo_rel if r not in old_docs)
    # A file that is still there but can no longer be read keeps its indexed version: nothing is lost.
    unreadable = {sk.rel for sk in skipped if sk.rel in old_docs and sk.rel not in failed_before}
    skipped = [Skipped(sk.rel, sk.reason + "; kept the previous version") if sk.rel in unreadable else sk
               for sk in skipped]
    unchanged += tuple(sorted(unreadable | {r for r in failed_before if r in old_docs}))
    removed = tuple(r for r in old_docs if r not in by_rel and r not in unreadable)

    if not full and not changed and not added and not removed:
        report = BuildReport(index_dir, unchanged=unchanged, skipped=tuple(skipped),
                             chunks=old.chunks if old else 0, seconds=time.perf_counter() - t0,
                             timings=timings, pending=old.pending if old else 0)
        if wait and report.pending:
            return _fill(settings, embedder, report, progress, cancel, t0)
        _maintain(settings, embedder, report)
        return report

    emb = embedder if embedder is not None else embedder_for(settings)
    model_id = emb.model_id
    wanted = wanted_manifest(settings, model_id, backend=backend_of(emb))
    report = _write_generation(settings, emb, wanted, old, old_reader, full, by_rel, added, changed,
                               removed, unchanged, skipped, timings, progress, t0, cancel, old_docs, targeted)
    if reason:
        report = replace(report, rebuilt=bool(old is not None or rebuild), reason=reason)
    if wait and report.pending:
        return _fill(settings, emb, report, progress, cancel, t0)
    _maintain(settings, emb, report)
    return report


def _maintain(settings: Settings, emb: Embedder | None, report: BuildReport) -> None:
    """Merges and ANN indexes, once every vector is in (the caller holds the writer lock)."""
    if report.pending == 0 and not (report.timings or {}).get("cancelled"):
        t = time.perf_counter()
        maintain(settings)
        report.timings["maintain"] = time.perf_counter() - t


def _fill(settings: Settings, emb: Embedder | None, report: BuildReport, progress: Progress | None,
          cancel: threading.Event | None, t0: float) -> BuildReport:
    emb = emb if emb is not None else embedder_for(settings)
    filled = fill_vectors_locked(settings, emb, progress=progress, cancel=cancel)
    report = replace(report, embedded=report.embedded + filled.embedded, pending=filled.pending,
                     seconds=time.perf_counter() - t0)
    _maintain(settings, emb, report)
    return report


def fill_vectors(settings: Settings, embedder: Embedder | None = None, *, progress: Progress | None = None,
                 cancel: threading.Event | None = None, on_publish: Callable[[], None] | None = None):  # noqa: ANN201
    """Embed the live index's chunks that have no dense vector yet (after build_index(wait=False)),
    publishing generations as vectors fill in; `on_publish` is called after each. Returns a FillReport."""
    emb = embedder if embedder is not None else embedder_for(settings)
    with layout.writer_lock(settings.index_dir):
        report = fill_vectors_locked(settings, emb, progress=progress, cancel=cancel, on_publish=on_publish)
        if report.pending == 0 and not (cancel is not None and cancel.is_set()):
            maintain(settings)
            if on_publish is not None:
                on_publish()
        return report


def optimize_index(settings: Settings) -> list[str]:
    """Merge every segment into one (deleted rows dropped) and give it its ANN index if it is large enough
    (`assistant index --optimize`); what was done, one line each. Waits for nothing: a fill in progress
    holds the lock and IndexLockedError says so."""
    with layout.writer_lock(settings.index_dir):
        gen = layout.require_generation(settings.index_dir)
        if Manifest.read(gen / layout.MANIFEST).pending:
            return ["not optimized: dense vectors are still being filled in; run it again when they are"]
        return maintain(settings, optimize=True) or ["already optimal: one segment, nothing deleted"]


def _skipped_line(skipped: list[Skipped], most: int = 3) -> str:
    shown = "; ".join(f"{sk.rel} ({sk.reason})" for sk in skipped[:most])
    return shown + (f"; and {len(skipped) - most} more" if len(skipped) > most else "")


def _write_generation(settings: Settings, emb: Embedder, wanted: Manifest, old: Manifest | None,
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
    now = _now()

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
