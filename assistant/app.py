"""The Assistant: one object that keeps the index fresh, retrieves, and answers. The CLI, the web chat and
the evaluation runner all go through it; developers embed it the same way."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import validate
from .embed import Embedder, LazyEmbedder, embedder_for
from .errors import DocumentError, EndpointError, IndexLockedError
from .index import BuildReport, DocInfo, build_index, library
from .index.build import Progress
from .index.library import Library
from .index.store import store_for
from .records import Answer, Hit, Turn
from .retrieve import Retriever
from .settings import Settings

if TYPE_CHECKING:
    from .documents import DocumentStatus


@dataclass(frozen=True)
class Saved:
    """An uploaded file as it was saved: `name` in the documents folder, and what the user should know."""

    name: str
    note: str = ""  # e.g. "saved as a-2.md: another a.md is already there"
    duplicate: bool = False  # the same bytes were already in the folder: nothing was written


@dataclass(frozen=True)
class UploadReport:
    saved: tuple[Saved, ...] = ()
    rejected: tuple[str, ...] = ()  # one line each: "name: reason"
    build: BuildReport | None = None


class Assistant:
    def __init__(self, settings: Settings, retriever: Retriever) -> None:
        from .answer.extractive import ExtractiveAnswerer, Scoring

        self.settings = settings
        self._retriever = retriever
        self._embedder = retriever.embedder
        # Sentence vectors the index stored when it embedded the documents (sentvec.py): answers read them
        # instead of embedding; they are keyed by the sentence's text, so they cannot outlive it.
        stored = retriever.sentences
        self._extractive = ExtractiveAnswerer(retriever.embed, threshold=settings.abstain_threshold,
                                              max_sentences=settings.answer_sentences, stored=stored,
                                              embed_queries=retriever.embed_queries,
                                              scoring=Scoring(asked_for=settings.asked_for_weight,
                                                              term_section=settings.term_section_weight,
                                                              term_default=settings.term_default_weight,
                                                              compose=settings.compose_quotes))
        self._llm = None
        self._swap = threading.Lock()  # guards replacing the retriever after an index update
        self._write = threading.Lock()  # one index update at a time from this process
        self.last_build: BuildReport | None = None  # what opening did to the index, for the caller to show
        self.notices: tuple[str, ...] = ()
        self.fill_error = ""
        self.fill_progress: tuple[int, int, float] = (0, 0, 0.0)  # texts embedded, to embed, per second
        self._fill_started: tuple[float, int] | None = None
        self._filler: threading.Thread | None = None
        self._fill_lock = threading.Lock()
        self._stop = threading.Event()  # stops the background fill (an update, a cancel)
        self._cancelled = False
        self._skips: dict[str, str] = {}  # rel -> why the last update that looked at it skipped it

    @classmethod
    def open(cls, settings: Settings | None = None, *, embedder: Embedder | None = None, build: bool = True,
             progress: Progress | None = None, background: bool = True, wait: bool = False) -> Assistant:
        """Load the index of settings.docs_dir (building or updating it first when `build`). The model is
        loaded once, and only after the folder and the index have been checked. When another process is
        writing the index, the live version is opened as it is (see `notices`).

        A large build is searchable as soon as its documents are chunked: lexically at once, densely as
        vectors fill in, which a thread of this Assistant does when `background` (otherwise they wait for
        `fill_in_background()` or `assistant index`); `dense_status()` says how far it is. With `wait`, it
        returns only once every vector is in, as `assistant index` does."""
        settings = settings or Settings.load()
        emb = embedder if embedder is not None else embedder_for(settings)
        report, notices = None, ()
        if build:
            try:
                report = build_index(settings, embedder=emb, progress=progress, wait=wait)
            except IndexLockedError:
                if store_for(settings).recorded() is None:
                    raise IndexLockedError(f"another process is building the index in "
                                           f"{store_for(settings).describe()}; "
                                           "try again when it has finished") from None
                notices = ("another process is updating the index; answering from its current version",)
        a = cls(settings, Retriever.open(settings, emb))
        a.last_build, a.notices = report, notices
        if report is not None:
            a._note_skips(report)
        if background and not notices and a.dense_status()[0] < a.dense_status()[1]:
            a.fill_in_background()
        return a

    # -- dense vectors filling in ----------------------------------------------------------------------
    def dense_status(self) -> tuple[int, int]:
        """(chunks with a dense vector, chunks) in the live index."""
        return self._retriever.dense_status()

    @property
    def indexing(self) -> bool:
        """True while this Assistant is embedding in the background."""
        t = self._filler
        return t is not None and t.is_alive()

    def fill_in_background(self) -> None:
        """Start embedding the chunks that have no vector yet in a thread, serving each new generation."""
        with self._fill_lock:
            if self.indexing:
                return
            self._stop.clear()
            self._filler = threading.Thread(target=self._fill, name="fill-vectors", daemon=True)
            self._filler.start()

    def cancel_indexing(self) -> None:
        """Stop embedding at the next slice boundary; what was embedded is kept (and resumed next time)."""
        self._stop.set()
        self._cancelled = True

    def _fill(self) -> None:
        from .index.build import fill_vectors

        try:
            fill_vectors(self.settings, self._embedder, cancel=self._stop, on_publish=self._reload,
                         progress=self._track)
        except IndexLockedError:
            pass  # another process is writing: it fills them in itself
        except Exception as e:  # noqa: BLE001  (a thread has nobody to raise to: keep it for the status)
            self.fill_error = f"{type(e).__name__}: {e}"

    def _track(self, stage: str, done: int, total: int, item: str = "") -> None:
        if stage == "embedding":
            now = time.monotonic()
            start = self._fill_started if self._fill_started and done else (now, done)
            self._fill_started = start
            rate = (done - start[1]) / (now - start[0]) if now > start[0] and done > start[1] else 0.0
            self.fill_progress = (done, total, rate)

    def _reload(self) -> None:
        fresh = Retriever.open(self.settings, self._embedder)
        with self._swap:
            self._retriever = fresh

    def _pause_fill(self) -> None:
        t = self._filler
        if t is not None and t.is_alive():
            self._stop.set()
            t.join()

    def warm_up(self) -> None:
        """Load the embedding model now if it is not loaded yet (e.g. in a thread while a server starts)."""
        emb = self._embedder
        if isinstance(emb, LazyEmbedder):
            emb.real()

    @property
    def retriever(self) -> Retriever:
        return self._retriever

    # -- search and answers ----------------------------------------------------------------------------
    def search(self, query: str, k: int | None = None) -> list[Hit]:
        return self._retriever.search(query, k)  # the retriever checks query and k

    def ask(self, question: str, history: Sequence[Turn] = (), k: int | None = None,
            mode: str | None = None) -> Answer:
        answer = None
        for event in self.ask_stream(question, history, k, mode):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def ask_stream(self, question: str, history: Sequence[Turn] = (), k: int | None = None,
                   mode: str | None = None, *, retriever: Retriever | None = None) -> Iterator[str | Answer]:
        """Text deltas as the answer is produced, then the final Answer. Bad input (an empty or too long
        question, too much history, a bad k or mode) raises InputError before anything is searched.
        `retriever` pins the index version to answer from (default: the live one); a caller that shows
        citations in their documents should pass the one whose `document_text` it will use."""
        s = self.settings
        question = validate.check_text(s, question)
        validate.check_history(s, history)
        k = validate.check_k(s, k)
        mode = validate.check_mode(mode) or s.mode
        retriever = retriever or self._retriever
        t0 = time.perf_counter()
        context = history[-1].question if history else ""
        hits, timings = retriever.search_with_timings(question, k, context=context)
        timings["search_ms"] = (time.perf_counter() - t0) * 1000
        notices: tuple[str, ...] = lexical_notice(retriever)
        if mode == "llm":
            llm = self._llm_answerer()
            if llm is None:
                notices = ("LLM mode needs llm_base_url and llm_model; answered extractively.",)
            else:
                produced = False
                try:
                    for event in llm.stream(question, hits, history, retriever.doc_texts):
                        if isinstance(event, Answer):
                            yield _finish(event, timings, t0)
                            return
                        produced = True
                        yield event
                except EndpointError as e:
                    notices = (f"{e}; answered extractively instead.",)
                    if produced:
                        yield "\n\n"
        for event in self._extractive.stream(question, hits, retriever.doc_texts, retriever.reader.documents,
                                             history, retriever.reader):
            if isinstance(event, Answer):
                yield _finish(replace(event, notices=event.notices + notices), timings, t0)
            else:
                yield event

    def _llm_answerer(self):  # noqa: ANN202
        if not (self.settings.llm_base_url and self.settings.llm_model):
            return None
        if self._llm is None:
            from .answer.llm import LLMAnswerer

            self._llm = LLMAnswerer(self.settings)
        return self._llm

    def configure_llm(self, base_url: str, model: str, api_key: str | None = None) -> None:
        """Point the LLM mode at another endpoint (the web chat's settings); `api_key` None keeps the key. The
        settings are checked (ConfigError for a URL that is not http(s)) before anything changes."""
        fresh = replace(self.settings, llm_base_url=base_url.strip(), llm_model=model.strip(),
                        llm_api_key=self.settings.llm_api_key if api_key is None else api_key.strip())
        llm = None
        if fresh.llm_base_url and fresh.llm_model:
            from .answer.llm import LLMAnswerer

            llm = LLMAnswerer(fresh)  # validates the URL
        self.settings, self._llm = fresh, llm

    def llm_status(self) -> str:
        llm = self._llm_answerer()
        return "not configured" if llm is None else llm.status()

    # -- documents -------------------------------------------------------------------------------------
    def documents(self) -> list[DocInfo]:
        return self._retriever.documents()

    def document_count(self) -> int:
        """How many documents the index holds (from its manifest: nothing is read per document)."""
        return self._retriever.reader.manifest.documents

    def document_text(self, source: str) -> str:
        return self._retriever.document_text(source)

    def add_document(self, filename: str, data: bytes) -> Saved:
        """Check an uploaded file and save it into the documents folder; call update_index() afterwards
        (several uploads can share one update), or use add_documents(). A file that cannot be indexed
        (unsupported, too big, binary, unparseable, no text) raises DocumentError and is not saved. An
        existing file is never replaced: identical bytes are not saved twice, other bytes get a new name."""
        from .load import load_bytes
        from .load.uploads import check_size, sanitize_filename, target_path

        name = sanitize_filename(filename)
        check_size(name, len(data) if data.strip() else 0, self.settings.max_upload_mb)
        load_bytes(name, data)  # raises DocumentError with the reason
        self.settings.docs_dir.mkdir(parents=True, exist_ok=True)
        target = target_path(self.settings.docs_dir, name)
        tmp = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.upload")
        tmp.write_bytes(data)
        try:
            stem, suffix = _split_suffix(target.name)
            for n in range(1, 1000):
                candidate = target if n == 1 else target.with_name(f"{stem}-{n}{suffix}")
                if (candidate.is_file() and candidate.stat().st_size == len(data)
                        and candidate.read_bytes() == data):
                    why = "" if n == 1 else f" as {candidate.name}"
                    if candidate.name in Library.read(self.settings.index_dir).excluded:  # asked for again
                        library.update(self.settings.index_dir, include=candidate.name)
                        return Saved(candidate.name, f"{name}: already in the documents folder{why}, excluded "
                                                     "from the index; indexed again")
                    return Saved(candidate.name, f"{name}: already in the documents folder{why}; not saved again",
                                 duplicate=True)
                try:
                    os.link(tmp, candidate)  # never replaces an existing file, even in a race
                except FileExistsError:
                    continue
                note = "" if n == 1 else f"saved as {candidate.name}: another {name} is already there"
                library.update(self.settings.index_dir, uploaded=(candidate.name, hashlib.sha256(data).hexdigest()))
                return Saved(candidate.name, note)
            raise DocumentError(name, "too many files of that name in the documents folder")
        finally:
            tmp.unlink(missing_ok=True)

    def add_documents(self, files: Sequence[tuple[str, bytes]], progress: Progress | None = None) -> UploadReport:
        """Save uploads (see add_document) and index them in one update. A saved file that indexing still
        skips is removed again (it was ours) and reported with its reason: nothing is left behind unseen."""
        saved: list[Saved] = []
        rejected: list[str] = []
        for filename, data in files:
            try:
                saved.append(self.add_document(filename, data))
            except DocumentError as e:
                rejected.append(str(e))
        new = {s.name for s in saved if not s.duplicate or "indexed again" in s.note}
        if not new:
            return UploadReport(tuple(saved), tuple(rejected))
        report = self.update_index(progress=progress, paths=sorted(new))
        failed = {sk.rel: sk.reason for sk in report.skipped if sk.rel in new}
        for name, reason in failed.items():
            (self.settings.docs_dir / name).unlink(missing_ok=True)
            library.update(self.settings.index_dir, forget=name)
            rejected.append(f"{name}: {reason}; not kept")
        return UploadReport(tuple(s for s in saved if s.name not in failed), tuple(rejected), report)

    def document_statuses(self) -> list[DocumentStatus]:
        """Every document the index knows about: indexed, kept at its previous version, skipped (with the
        reason) or excluded; for the document manager."""
        from .documents import document_statuses

        return document_statuses(self._retriever.reader, self.settings.docs_dir, Library.read(self.settings.index_dir),
                                 self._skips)

    def deletable(self, source: str) -> bool:
        """Whether the chat may delete this file: it saved it, and the bytes there are still the ones it saved."""
        saved = Library.read(self.settings.index_dir).uploaded.get(source)
        if saved is None:
            return False
        target = self._inside_docs(source)
        if target is None or not target.is_file():
            return False
        return hashlib.sha256(target.read_bytes()).hexdigest() == saved

    def remove_document(self, source: str, *, delete_file: bool = False) -> BuildReport:
        """Take a document out of the index. Its file stays in the documents folder, listed as excluded in
        the index folder's library.json, so no later update indexes it again (include_document brings it
        back). `delete_file` deletes the file as well, which only a file uploaded through the chat, still
        holding the bytes it saved, allows (DocumentError otherwise, and nothing is changed)."""
        lib = Library.read(self.settings.index_dir)
        if source not in lib.excluded and source not in self._retriever.reader.documents:
            raise DocumentError(source, "not an indexed document")
        if delete_file and not self.deletable(source):
            raise DocumentError(source, "not deleted: only a file uploaded through the chat, unchanged since, can "
                                        "be deleted from here; it stays in the documents folder")
        with self._write:
            library.update(self.settings.index_dir, exclude=source)
            if delete_file:
                target = self._inside_docs(source)
                assert target is not None
                target.unlink(missing_ok=True)
                library.update(self.settings.index_dir, forget=source)
        return self.update_index(paths=[source])

    def include_document(self, source: str) -> BuildReport:
        """Index an excluded document again."""
        if source not in Library.read(self.settings.index_dir).excluded:
            raise DocumentError(source, "not an excluded document")
        with self._write:
            library.update(self.settings.index_dir, include=source)
        return self.update_index(paths=[source])

    def reindex_document(self, source: str) -> BuildReport:
        """Look at one document's file again: re-indexed if it changed, removed if it is gone."""
        known = {d.path for d in self.document_statuses() if d.status != "excluded"}
        if source not in known:
            raise DocumentError(source, "not a document of the index")
        return self.update_index(paths=[source])

    def _note_skips(self, report: BuildReport) -> None:
        for rel in (*report.added, *report.changed, *report.removed, *report.unchanged):
            self._skips.pop(rel, None)
        for sk in report.skipped:
            if len(self._skips) < 10_000 or sk.rel in self._skips:
                self._skips[sk.rel] = sk.reason

    def _inside_docs(self, source: str) -> Path | None:
        docs = self.settings.docs_dir.resolve()
        target = (docs / source).resolve()
        return target if docs in target.parents else None

    def update_index(self, progress: Progress | None = None, paths: Sequence[str] | None = None) -> BuildReport:
        """Re-scan the documents folder (or only `paths` in it), update the index incrementally, and serve
        the new one at once; a large update's vectors fill in behind it. A background fill pauses for the
        update."""
        with self._write:
            self._pause_fill()
            self._cancelled = False
            self._stop.clear()
            report = build_index(self.settings, embedder=self._embedder, progress=progress, wait=False,
                                 cancel=self._stop, paths=paths, merge=False)
            if report.wrote or report.skipped:  # a skip may be recorded in the manifest without other changes
                self._reload()
            self._note_skips(report)
        if not self._cancelled:  # vectors still to embed, and merges: in a thread, so the update returns now
            self.fill_in_background()
        return report


def lexical_notice(retriever: Retriever) -> tuple[str, ...]:
    """What an answer must say while dense vectors are still filling in."""
    dense, total = retriever.dense_status()
    if dense >= total or retriever.settings.retrieval == "bm25":
        return ()
    if dense == 0:
        return (f"answered from lexical search alone: dense vectors are still being computed (0 of {total:,})",)
    return (f"dense vectors: {dense:,} of {total:,} ready; passages without one were found by lexical search "
            "alone",)


def _split_suffix(name: str) -> tuple[str, str]:
    lower = name.lower()
    if lower.endswith(".rst.txt"):
        return name[:-8], name[-8:]
    stem, dot, suffix = name.rpartition(".")
    return (stem, dot + suffix) if dot else (name, "")


def _finish(answer: Answer, timings: dict[str, float], t0: float) -> Answer:
    merged = {**timings, **answer.timings_ms, "total_ms": (time.perf_counter() - t0) * 1000}
    return replace(answer, timings_ms={k: round(v, 2) for k, v in merged.items()})

