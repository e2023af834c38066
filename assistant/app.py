"""The Assistant: one object that keeps the index fresh, retrieves, and answers. The CLI, the web chat and
the evaluation runner all go through it; developers embed it the same way."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

from .embed import Embedder, load_embedder
from .errors import DocumentError, EndpointError
from .index import BuildReport, DocInfo, build_index
from .index.build import Progress
from .records import Answer, Hit, Turn
from .retrieve import Retriever
from .settings import Settings


class Assistant:
    def __init__(self, settings: Settings, retriever: Retriever) -> None:
        from .answer.extractive import ExtractiveAnswerer

        self.settings = settings
        self._retriever = retriever
        self._embedder = retriever.embedder
        self._extractive = ExtractiveAnswerer(retriever.embed, threshold=settings.abstain_threshold,
                                              max_sentences=settings.answer_sentences)
        self._llm = None
        self._swap = threading.Lock()  # guards replacing the retriever after an index update
        self._write = threading.Lock()  # one index update at a time from this process

    @classmethod
    def open(cls, settings: Settings | None = None, *, embedder: Embedder | None = None, build: bool = True,
             progress: Progress | None = None) -> Assistant:
        """Load the index of settings.docs_dir (building or updating it first when `build`)."""
        settings = settings or Settings.load()
        emb = embedder
        if build:
            emb = emb or load_embedder(settings.model)
            build_index(settings, embedder=emb, progress=progress)
        return cls(settings, Retriever.open(settings, emb))

    @property
    def retriever(self) -> Retriever:
        return self._retriever

    # -- search and answers ----------------------------------------------------------------------------
    def search(self, query: str, k: int | None = None) -> list[Hit]:
        return self._retriever.search(query, k)

    def ask(self, question: str, history: Sequence[Turn] = (), k: int | None = None,
            mode: str | None = None) -> Answer:
        answer = None
        for event in self.ask_stream(question, history, k, mode):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def ask_stream(self, question: str, history: Sequence[Turn] = (), k: int | None = None,
                   mode: str | None = None) -> Iterator[str | Answer]:
        """Text deltas as the answer is produced, then the final Answer."""
        question = question.strip()
        mode = mode or self.settings.mode
        retriever = self._retriever
        t0 = time.perf_counter()
        context = history[-1].question if history else ""
        hits, timings = retriever.search_with_timings(question, k, context=context)
        timings["search_ms"] = (time.perf_counter() - t0) * 1000
        notices: tuple[str, ...] = ()
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
                                             history):
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

    def llm_status(self) -> str:
        llm = self._llm_answerer()
        return "not configured" if llm is None else llm.status()

    # -- documents -------------------------------------------------------------------------------------
    def documents(self) -> list[DocInfo]:
        return self._retriever.documents()

    def document_text(self, source: str) -> str:
        return self._retriever.document_text(source)

    def add_document(self, filename: str, data: bytes) -> str:
        """Validate an uploaded file and save it into the documents folder; returns its relative path.
        Call update_index() afterwards (several uploads can share one update)."""
        from .load.uploads import check_size, target_path

        check_size(filename, len(data) if data.strip() else 0, self.settings.max_upload_mb)
        self.settings.docs_dir.mkdir(parents=True, exist_ok=True)
        target = target_path(self.settings.docs_dir, filename)
        tmp = target.with_name(f".{target.name}.upload")
        tmp.write_bytes(data)
        tmp.replace(target)
        return target.name

    def remove_document(self, source: str) -> BuildReport:
        docs = self.settings.docs_dir.resolve()
        target = (docs / source).resolve()
        if docs not in target.parents or not target.is_file():
            raise DocumentError(source, "no such document in the documents folder")
        target.unlink()
        return self.update_index()

    def update_index(self, progress: Progress | None = None) -> BuildReport:
        """Re-scan the documents folder, update the index incrementally, and serve the new one."""
        with self._write:
            report = build_index(self.settings, embedder=self._embedder, progress=progress)
            if report.wrote:
                fresh = Retriever.open(self.settings, self._embedder)
                with self._swap:
                    self._retriever = fresh
        return report


def _finish(answer: Answer, timings: dict[str, float], t0: float) -> Answer:
    merged = {**timings, **answer.timings_ms, "total_ms": (time.perf_counter() - t0) * 1000}
    return replace(answer, timings_ms={k: round(v, 2) for k, v in merged.items()})

