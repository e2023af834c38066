"""Build or update the index of a documents folder: incremental by content hash, crash-safe by generations."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from .. import __version__
from ..chunk import CHUNKER_VERSION
from ..embed import Embedder, embedder_for
from ..errors import DocumentError, IndexMismatchError
from ..load import SUPPORTED_SUFFIXES, Skipped, SourceFile, scan_folder, scan_paths
from ..settings import Settings
from ..tokens import ENCODING
from . import layout
from .fill import backend_of, fill_vectors_locked
from .library import Library
from .manifest import FORMAT_VERSION, Manifest
from .merge import maintain
from .reader import IndexReader, open_generation
from .report import BuildReport
from .sentvec import fill_sentences
from .write import write_generation

Progress = Callable[[str, int, int, str], None]  # (stage, done, total, item: a file being read, a rate)


def wanted_manifest(settings: Settings, model_id: str, dimension: int = 0, max_seq: int = 0,
                    backend: str = "torch") -> Manifest:
    """The manifest an index built now with `settings` would have (before its documents are known)."""
    return Manifest(FORMAT_VERSION, __version__, model_id, dimension, max_seq, settings.chunk_tokens,
                    settings.chunk_overlap, CHUNKER_VERSION, ENCODING, backend=backend)


def build_index(settings: Settings, *, embedder: Embedder | None = None, rebuild: bool = False,
                progress: Progress | None = None, replace_folder: bool = False, wait: bool = True,
                cancel: threading.Event | None = None, paths: Sequence[str] | None = None,
                merge: bool = True) -> BuildReport:
    """Bring the index in the store `settings.store` names (`local`: `settings.index_dir`) up to date with
    `settings.docs_dir`. See build_local for what an update does; a PostgreSQL store does the same."""
    from .store import store_for

    return store_for(settings).build(settings, embedder=embedder, rebuild=rebuild, progress=progress,
                                     replace_folder=replace_folder, wait=wait, cancel=cancel, paths=paths,
                                     merge=merge)


def build_local(settings: Settings, *, embedder: Embedder | None = None, rebuild: bool = False,
                progress: Progress | None = None, replace_folder: bool = False, wait: bool = True,
                cancel: threading.Event | None = None, paths: Sequence[str] | None = None,
                merge: bool = True) -> BuildReport:
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

    Files listed as excluded in the index folder's library.json (see library.py) are passed over.

    `merge`: merge segments and build ANN indexes, as the policy says, once the update is published;
    False leaves that to the next build, fill_vectors or optimize_index (the chat does it in a thread).
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
                old_reader = open_generation(index_dir, gen, None)
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
        # Files the user excluded stay in the folder but out of the index (an indexed one is removed).
        excluded = Library.read(index_dir).excluded
        if excluded:
            files = [f for f in files if f.rel not in excluded]
            skipped = [sk for sk in skipped if sk.rel not in excluded]
        timings["scan"] = time.perf_counter() - t0
        if not files and old is None:
            raise DocumentError(str(settings.docs_dir),
                                f"no documents to index (supported: {' '.join(SUPPORTED_SUFFIXES)}); "
                                "add files to the folder or pass --docs FOLDER"
                                + (f"; skipped: {_skipped_line(skipped)}" if skipped else ""))
        by_rel = {f.rel: f for f in files}
        try:
            report = _update(settings, embedder, progress, cancel, wait, t0, old, old_reader, full, reason,
                             rebuild, by_rel, skipped, timings, old_docs, set(paths or ()) if targeted else None)
        finally:
            if old_reader is not None:
                old_reader.close()
        if report.pending == 0 and settings.sentence_vectors and not (cancel is not None and cancel.is_set()):
            t = time.perf_counter()
            emb = embedder if embedder is not None else embedder_for(settings)
            fill_sentences(settings, emb, list(paths) if targeted else None, progress, cancel)
            report.timings["sentences"] = time.perf_counter() - t
        if merge and report.pending == 0 and not (cancel is not None and cancel.is_set()):
            t = time.perf_counter()
            maintain(settings)
            report.timings["maintain"] = time.perf_counter() - t
        return report


def _update(settings: Settings, embedder: Embedder | None, progress: Progress | None,
            cancel: threading.Event | None, wait: bool, t0: float, old: Manifest | None,
            old_reader: IndexReader | None, full: bool, reason: str, rebuild: bool,
            by_rel: dict[str, SourceFile], skipped: list[Skipped], timings: dict[str, float],
            old_docs: dict[str, dict], targeted: set[str] | None) -> BuildReport:
    """`old_docs`: the indexed documents to compare with (only the `targeted` paths', when given)."""
    index_dir = settings.index_dir
    added, changed, removed, unchanged, skipped = plan_update(full, old, by_rel, skipped, old_docs)

    if not full and not changed and not added and not removed:
        report = BuildReport(index_dir, unchanged=unchanged, skipped=tuple(skipped),
                             chunks=old.chunks if old else 0, seconds=time.perf_counter() - t0,
                             timings=timings, pending=old.pending if old else 0)
        if wait and report.pending:
            return _fill(settings, embedder, report, progress, cancel, t0)
        return report

    emb = embedder if embedder is not None else embedder_for(settings)
    model_id = emb.model_id
    wanted = wanted_manifest(settings, model_id, backend=backend_of(emb))
    report = write_generation(settings, emb, wanted, old, old_reader, full, by_rel, added, changed,
                               removed, unchanged, skipped, timings, progress, t0, cancel, old_docs, targeted)
    if reason:
        report = replace(report, rebuilt=bool(old is not None or rebuild), reason=reason)
    if wait and report.pending:
        return _fill(settings, emb, report, progress, cancel, t0)
    return report


Plan = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...], list[Skipped]]


def plan_update(full: bool, old: Manifest | None, by_rel: dict[str, SourceFile], skipped: list[Skipped],
                old_docs: dict[str, dict]) -> Plan:
    """(added, changed, removed, unchanged, skipped): what an update must do, by comparing the files found
    with the indexed documents `old_docs` (path -> {sha256, ...}); the same for every store."""
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
    return added, changed, removed, unchanged, skipped


def _fill(settings: Settings, emb: Embedder | None, report: BuildReport, progress: Progress | None,
          cancel: threading.Event | None, t0: float) -> BuildReport:
    emb = emb if emb is not None else embedder_for(settings)
    filled = fill_vectors_locked(settings, emb, progress=progress, cancel=cancel)
    return replace(report, embedded=report.embedded + filled.embedded, pending=filled.pending,
                   seconds=time.perf_counter() - t0)


def fill_vectors(settings: Settings, embedder: Embedder | None = None, *, progress: Progress | None = None,
                 cancel: threading.Event | None = None, on_publish: Callable[[], None] | None = None):  # noqa: ANN201
    """Embed the live index's chunks that have no dense vector yet (after build_index(wait=False)),
    publishing generations as vectors fill in; `on_publish` is called after each. Then, every vector in,
    merges and ANN indexes as the policy says (stopped too by `cancel`). Returns a FillReport."""
    from .store import store_for

    emb = embedder if embedder is not None else embedder_for(settings)
    return store_for(settings).fill(settings, emb, progress=progress, cancel=cancel, on_publish=on_publish)


def fill_local(settings: Settings, emb: Embedder, *, progress: Progress | None = None,
               cancel: threading.Event | None = None, on_publish: Callable[[], None] | None = None):  # noqa: ANN201
    """fill_vectors on the local store."""
    with layout.writer_lock(settings.index_dir):
        report = fill_vectors_locked(settings, emb, progress=progress, cancel=cancel, on_publish=on_publish)
        done = report.pending == 0 and not (cancel is not None and cancel.is_set())
        if done:
            fill_sentences(settings, emb, None, progress, cancel)
        if done and maintain(settings, cancel=cancel) and on_publish is not None:
            on_publish()
        return report


def optimize_index(settings: Settings) -> list[str]:
    """Merge every segment into one (deleted rows dropped) and give it its ANN index if it is large enough
    (`assistant index --optimize`); what was done, one line each. Waits for nothing: a fill in progress
    holds the lock and IndexLockedError says so."""
    from .store import store_for

    return store_for(settings).optimize(settings)


def optimize_local(settings: Settings) -> list[str]:
    with layout.writer_lock(settings.index_dir):
        gen = layout.require_generation(settings.index_dir)
        if Manifest.read(gen / layout.MANIFEST).pending:
            return ["not optimized: dense vectors are still being filled in; run it again when they are"]
        return maintain(settings, optimize=True) or ["already optimal: one segment, nothing deleted"]


def _skipped_line(skipped: list[Skipped], most: int = 3) -> str:
    shown = "; ".join(f"{sk.rel} ({sk.reason})" for sk in skipped[:most])
    return shown + (f"; and {len(skipped) - most} more" if len(skipped) > most else "")
