"""Build or update the index of a documents folder: incremental by content hash, crash-safe by generations."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .. import __version__
from ..chunk import CHUNKER_VERSION, chunk_document, embedding_text
from ..embed import Embedder, LazyEmbedder, embedder_for
from ..errors import DocumentError, IndexMismatchError
from ..load import SUPPORTED_SUFFIXES, Skipped, SourceFile, load_file, scan_folder
from ..records import Chunk, Document
from ..settings import Settings
from ..tokens import ENCODING
from . import chunkdb, layout
from .embcache import FILE
from .fill import add_cached, backend_of, embed_into, fill_vectors_locked, open_cache, prune_cache
from .manifest import FORMAT_VERSION, Manifest
from .vectors import FaissStore, faiss_id

Progress = Callable[[str, int, int, str], None]  # (stage, done, total, item: a file being read, a rate)


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
                cancel: threading.Event | None = None) -> BuildReport:
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
        timings: dict[str, float] = {}
        files, skipped = scan_folder(settings.docs_dir, settings.max_file_mb)
        timings["scan"] = time.perf_counter() - t0
        if not files and old is None:
            raise DocumentError(str(settings.docs_dir),
                                f"no documents to index (supported: {' '.join(SUPPORTED_SUFFIXES)}); "
                                "add files to the folder or pass --docs FOLDER"
                                + (f"; skipped: {_skipped_line(skipped)}" if skipped else ""))
        by_rel = {f.rel: f for f in files}

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
        old_docs = {} if full or old is None else old.documents
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
            return _fill(settings, embedder, report, progress, cancel, t0) if wait and report.pending else report

        emb = embedder if embedder is not None else embedder_for(settings)
        tmp = layout.new_generation(index_dir)
        try:
            report = _write_generation(settings, emb, wanted, old, gen, tmp, full, by_rel, added, changed,
                                       removed, unchanged, skipped, timings, progress, t0, cancel)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if reason:
            report = replace(report, rebuilt=bool(old is not None or rebuild), reason=reason)
        if wait and report.pending:
            report = _fill(settings, emb, report, progress, cancel, t0)
        return report


def _fill(settings: Settings, emb: Embedder | None, report: BuildReport, progress: Progress | None,
          cancel: threading.Event | None, t0: float) -> BuildReport:
    emb = emb if emb is not None else embedder_for(settings)
    filled = fill_vectors_locked(settings, emb, progress=progress, cancel=cancel)
    return replace(report, embedded=report.embedded + filled.embedded, pending=filled.pending,
                   seconds=time.perf_counter() - t0)


def fill_vectors(settings: Settings, embedder: Embedder | None = None, *, progress: Progress | None = None,
                 cancel: threading.Event | None = None, on_publish: Callable[[], None] | None = None):  # noqa: ANN201
    """Embed the live index's chunks that have no dense vector yet (after build_index(wait=False)),
    publishing generations as vectors fill in; `on_publish` is called after each. Returns a FillReport."""
    emb = embedder if embedder is not None else embedder_for(settings)
    with layout.writer_lock(settings.index_dir):
        return fill_vectors_locked(settings, emb, progress=progress, cancel=cancel, on_publish=on_publish)


def _skipped_line(skipped: list[Skipped], most: int = 3) -> str:
    shown = "; ".join(f"{sk.rel} ({sk.reason})" for sk in skipped[:most])
    return shown + (f"; and {len(skipped) - most} more" if len(skipped) > most else "")


def _write_generation(settings: Settings, emb: Embedder, wanted: Manifest, old: Manifest | None,
                      gen: Path | None, tmp: Path, full: bool, by_rel: dict[str, SourceFile],
                      added: tuple[str, ...], changed: tuple[str, ...], removed: tuple[str, ...],
                      unchanged: tuple[str, ...], skipped: list[Skipped], timings: dict[str, float],
                      progress: Progress | None, t0: float, cancel: threading.Event | None = None
                      ) -> BuildReport:
    index_dir = settings.index_dir
    if not full and gen is not None and old is not None:
        shutil.copyfile(gen / layout.CHUNKS, tmp / layout.CHUNKS)
        store = FaissStore.load(gen / layout.VECTORS)
        documents = dict(old.documents)
    else:
        store = None  # created once the model is loaded: its dimension is not known before
        documents = {}
    con = chunkdb.connect(tmp / layout.CHUNKS)
    con.execute("BEGIN")

    # Load and chunk the new and changed documents; a document that fails is skipped (a changed one keeps
    # its previous version, so nothing is lost).
    t = time.perf_counter()
    todo = [*added, *changed]
    loaded: list[tuple[Document, list[Chunk]]] = []
    kept: list[str] = []
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
        loaded.append((doc, chunks))
    timings["load+chunk"] = time.perf_counter() - t

    if progress:
        progress("reading", len(todo), len(todo), "")
    all_chunks = [c for _, cs in loaded for c in cs]
    texts = [embedding_text(doc, c) for doc, cs in loaded for c in cs]
    prepare = getattr(emb, "prepare", None)
    if prepare is not None and texts:
        prepare(texts)  # an int8 export, if one must be made, is calibrated on these
    if store is None:
        store = FaissStore(emb.dimension)
    # Drop what is stale.
    stale = [r for r in (*changed, *removed) if r not in kept]
    store.remove(np.array([faiss_id(c) for c in chunkdb.chunk_ids_of(con, stale)], dtype=np.int64))
    chunkdb.delete_documents(con, stale)
    for r in stale:
        documents.pop(r, None)

    # Vectors: what the embedding cache knows (a killed build's work, text repeated across pages, text a
    # settings change left as it was) goes in at once. A small rest is embedded now; a large one is left
    # pending, so the index is searchable (lexically, and densely where vectors exist) as soon as it is
    # written, and fill_vectors embeds it behind.
    t = time.perf_counter()
    ids = np.array([faiss_id(c.id) for c in all_chunks], dtype=np.int64)
    pending = 0
    if all_chunks:
        cache = open_cache(index_dir, emb, store.dimension)
        todo = add_cached(store, cache, ids, texts)
        if len(todo) <= settings.progressive_min_chunks:
            embed_into(store, cache, emb, ids[todo], [texts[i] for i in todo], progress, cancel)
        else:
            pending = len(todo)
        cache.close()
    timings["embed"] = time.perf_counter() - t

    t = time.perf_counter()
    now = _now()
    for doc, cs in loaded:
        chunkdb.insert_document(con, doc, cs, now)
        documents[doc.path] = {"sha256": doc.sha256, "chunks": len(cs), "indexed_at": now}
    con.execute("COMMIT")
    total = chunkdb.count_chunks(con)
    con.close()
    store.save(tmp / layout.VECTORS)
    # An update that embedded nothing need not load the model: the old index knows its sequence length.
    lazy_unloaded = isinstance(emb, LazyEmbedder) and not emb.loaded
    max_seq = old.max_seq_length if old is not None and not full and lazy_unloaded else emb.max_tokens
    wanted = replace(wanted, dimension=store.dimension, max_seq_length=max_seq)
    wanted.documents = dict(sorted(documents.items()))
    wanted.skipped = {sk.rel: {"sha256": by_rel[sk.rel].sha256, "reason": sk.reason} for sk in skipped
                      if sk.rel in by_rel and documents.get(sk.rel, {}).get("sha256") != by_rel[sk.rel].sha256}
    docs_dir = settings.docs_dir.resolve()
    wanted.docs_dir = str(docs_dir)
    wanted.docs_dir_from_index = os.path.relpath(docs_dir, index_dir.resolve())
    wanted.chunks = total
    wanted.vectors = len(store)
    wanted.built_at = now
    wanted.build_seconds = round(time.perf_counter() - t0, 3)
    wanted.write(tmp / layout.MANIFEST)
    final = layout.publish(index_dir, tmp)
    layout.collect_garbage(index_dir, keep=final)
    if pending == 0 and (index_dir / FILE).exists():
        cache = open_cache(index_dir, emb, store.dimension)
        try:
            prune_cache(settings, cache, final, total)
        finally:
            cache.close()
    timings["write"] = time.perf_counter() - t

    ok_added = tuple(r for r in added if r in documents)
    ok_changed = tuple(r for r in changed if r in documents and r not in kept)
    return BuildReport(index_dir, ok_added, ok_changed, (*unchanged, *kept), removed, tuple(skipped),
                       total, len(all_chunks) - pending, time.perf_counter() - t0, timings=timings,
                       pending=pending)
