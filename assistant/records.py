"""The records that flow through the pipeline: small frozen dataclasses with content-derived ids."""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field


def content_id(*parts: object) -> str:
    """A stable 16-hex-digit id derived from the given parts."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8"))
    return h.hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Section:
    """A heading found in a document: `start` is the offset of the heading's first character in the text."""

    start: int
    level: int
    title: str


@dataclass(frozen=True, slots=True)
class Document:
    """A loaded document. Every offset elsewhere (chunks, hits, citations) indexes into `text`."""

    path: str  # relative POSIX path inside the documents folder
    text: str
    sha256: str  # of the raw file bytes
    title: str = ""
    sections: tuple[Section, ...] = ()  # in text order
    pages: tuple[int, ...] = ()  # PDF: start offset of each page in `text`; page n is pages[n - 1]

    def heading_path(self, offset: int) -> tuple[str, ...]:
        """The titles of the headings that enclose `offset`, outermost first."""
        path: list[tuple[int, str]] = []
        for s in self.sections:
            if s.start > offset:
                break
            while path and path[-1][0] >= s.level:
                path.pop()
            path.append((s.level, s.title))
        return tuple(t for _, t in path)

    def page_at(self, offset: int) -> int | None:
        """The 1-based page that holds `offset`, or None for documents without pages."""
        if not self.pages:
            return None
        return max(1, bisect.bisect_right(self.pages, offset))


@dataclass(frozen=True, slots=True)
class Chunk:
    """A span of a document that is embedded and indexed: `doc_text[start:end] == text`."""

    id: str
    source: str  # Document.path
    start: int
    end: int
    text: str
    headings: tuple[str, ...] = ()
    page: int | None = None

    @staticmethod
    def make(source: str, start: int, end: int, text: str, headings: tuple[str, ...] = (),
             page: int | None = None) -> Chunk:
        return Chunk(content_id(source, start, end, text), source, start, end, text, headings, page)


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved passage: one chunk, or several overlapping chunks of one document merged."""

    rank: int
    score: float
    source: str
    start: int
    end: int
    text: str
    headings: tuple[str, ...] = ()
    page: int | None = None
    chunk_ids: tuple[str, ...] = ()
    dense_score: float | None = None  # cosine similarity of the best merged chunk, if it was retrieved densely
    bm25_score: float | None = None


@dataclass(frozen=True, slots=True)
class Citation:
    """A quoted sentence (with the sentence or code it leans on, answer/compose.py) backing part of an answer:
    `doc_text[start:end] == quote`."""

    n: int
    source: str
    start: int
    end: int
    quote: str
    headings: tuple[str, ...] = ()
    page: int | None = None
    passage_start: int = 0  # the retrieved passage the quote came from, for showing it in context
    passage_end: int = 0


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier exchange of a conversation; its citations tell where the conversation is in the documents."""

    question: str
    answer: str = ""
    citations: tuple[Citation, ...] = ()


@dataclass(frozen=True, slots=True)
class Answer:
    question: str
    text: str  # sentences carrying [n] markers that refer to `citations`
    citations: tuple[Citation, ...]
    abstained: bool
    hits: tuple[Hit, ...]
    mode: str = "extractive"
    notices: tuple[str, ...] = ()  # one-line messages for the user (fallbacks, removed markers, ...)
    unsupported: tuple[str, ...] = ()  # LLM sentences that carry no valid citation
    timings_ms: dict[str, float] = field(default_factory=dict)
