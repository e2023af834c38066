"""HTML for the web chat: answers with [n] marker links, their sources with the quoted sentence highlighted,
and the raw retrieved passages. Every piece of text from a document, a user or a model is html-escaped
here; nothing else in the UI builds HTML from such text."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from html import escape
from pathlib import Path

from ..records import Answer, Citation, Hit

DocText = Callable[[str], str]  # source path -> the document's text, which citation offsets index into

# "[3]" or "[1, 2]"; only numbers that name a citation of the answer become links.
_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
PASSAGE_CONTEXT = 220  # most characters of the passage shown on each side of a quote
_BLANK_LINES = re.compile(r"\n[ \t]*\n\s*")


def _e(text: str) -> str:
    return escape(text, quote=True)


def anchor_id(turn: int, n: int) -> str:
    """The element id of source [n] of the answer to question number `turn` (1-based) of a conversation."""
    return f"cite-{turn}-{n}"


def render_question(text: str) -> str:
    return f'<div class="q-text">{_e(text)}</div>'


def render_partial(text: str) -> str:
    """An answer while it streams in: plain escaped text and a cursor."""
    return f'<div class="answer-text streaming">{_e(text)}<span class="cursor">▍</span></div>'


def render_stopped(text: str) -> str:
    """An answer stopped while it streamed: what had come, marked as stopped (it is not saved)."""
    return (f'<div class="answer-text stopped">{_e(text)}</div>'
            '<p class="notice stopped-note">■ Stopped. This partial answer is not saved; ask again or '
            'regenerate.</p>')


def render_error(message: str) -> str:
    return f'<p class="error">⚠ {_e(message)}</p>'


def source_label(source: str, headings: Sequence[str] = (), page: int | None = None) -> str:
    """'doc.txt — Heading › Subheading · page 3', escaped, as HTML."""
    parts = [f'<span class="doc">{_e(source)}</span>']
    where = " › ".join(h for h in headings if h)
    if where:
        parts.append(f'<span class="where">{_e(where)}</span>')
    if page is not None:
        parts.append(f'<span class="page">page {page}</span>')
    return " · ".join(parts)


def render_answer(answer: Answer, turn: int, doc_text: DocText, feedback: int | None = None) -> str:
    """The whole assistant message for a finished answer: text with marker links, the flagged unsupported
    sentences, notices, and the cited sources (or, when the answer abstains, the closest passages, folded so
    the "not found" line stays in view); then copy and feedback actions, and the answer as plain text for
    the copy action. `feedback`: the rating already given (1, -1), shown as chosen."""
    texts = _TextCache(doc_text)
    cited = {c.n for c in answer.citations}
    parts: list[str] = []
    if answer.abstained:
        parts.append('<p class="abstained">Not found in the documents: no passage answers this question '
                     'well enough to quote.</p>')
    body = _answer_text(answer.text, turn, cited, answer.unsupported)
    parts.append(f'<div class="answer-text">{body}</div>')
    missing = [s for s in answer.unsupported if s and s not in answer.text]
    if answer.unsupported:
        n = len(answer.unsupported)
        which = f"{n} sentences of this answer have" if n != 1 else "1 sentence of this answer has"
        extra = "".join(f' <span class="unsupported">{_e(s)}</span>' for s in missing)
        parts.append(f'<p class="unsupported-note">⚠ {which} no valid citation and may not be backed by '
                     f'the documents.{extra}</p>')
    if answer.notices:
        parts.append(f'<p class="notice">ℹ {_e(" · ".join(answer.notices))}</p>')
    if answer.citations:
        items = "".join(_citation(c, turn, texts) for c in sorted(answer.citations, key=lambda c: c.n))
        parts.append(f'<div class="sources"><div class="sources-title">Sources</div>{items}</div>')
    elif answer.hits:
        title = "Closest passages" if answer.abstained else "Retrieved passages"
        shown = answer.hits[:3]
        items = "".join(_hit(h) for h in shown)
        parts.append(f'<details class="sources closest"><summary class="sources-title">{title} ({len(shown)})'
                     f'</summary>{items}</details>')
    up = " chosen" if feedback == 1 else ""
    down = " chosen" if feedback == -1 else ""
    parts.append(f'<div class="answer-actions"><span class="meta">{_e(answer.mode)} answer</span>'
                 f'<a class="act copy" href="#copy-{turn}" title="Copy the answer and its sources as plain text">'
                 f'Copy</a><a class="act fb-up{up}" href="#fb-up-{turn}" title="👍 A good answer">Helpful</a>'
                 f'<a class="act fb-down{down}" href="#fb-down-{turn}" title="👎 A bad answer: say why">Not helpful'
                 f'</a></div>'
                 f'<div class="plain-text">{_e(plain_answer(answer))}</div>')
    return f'<div class="answer{" is-abstained" if answer.abstained else ""}">{"".join(parts)}</div>'


def plain_answer(answer: Answer) -> str:
    """The answer as plain text with its sources listed: `[1] file › section: "quote"`."""
    lines = []
    if answer.abstained:
        lines.append("Not found in the documents: no passage answers this question well enough to quote.")
    if answer.text.strip():
        lines.append(answer.text.strip())
    if answer.citations:
        lines.append("")
        lines.append("Sources:")
        for c in sorted(answer.citations, key=lambda c: c.n):
            where = " › ".join([c.source, *(h for h in c.headings if h)] + ([f"page {c.page}"] if c.page else []))
            lines.append(f'[{c.n}] {where}: "{" ".join(c.quote.split())}"')
    return "\n".join(lines)


def conversation_markdown(title: str, turns: Sequence[tuple[str, Answer]]) -> str:
    """A conversation as a Markdown document: each question, its answer and its sources."""
    out = [f"# {' '.join(title.split())}", ""]
    for question, answer in turns:
        out += [f"## {' '.join(question.split())}", "", plain_answer(answer).replace("\nSources:", "\n**Sources**"),
                ""]
    return "\n".join(out)


def render_hits(hits: Iterable[Hit]) -> str:
    """A table of retrieved passages with their fused, dense and BM25 scores."""
    rows = []
    for h in hits:
        dense = "" if h.dense_score is None else f"{h.dense_score:.3f}"
        bm25 = "" if h.bm25_score is None else f"{h.bm25_score:.3f}"
        rows.append(
            f'<tr><td>{h.rank}</td><td>{h.score:.4f}</td><td>{dense}</td><td>{bm25}</td>'
            f'<td>{source_label(h.source, h.headings, h.page)}</td>'
            f'<td><div class="passage">{_e(h.text)}</div></td></tr>')
    if not rows:
        return '<p class="empty">No passages retrieved yet.</p>'
    return ('<table class="hits"><thead><tr><th>#</th><th>score</th><th>dense</th><th>bm25</th>'
            f'<th>source</th><th>passage</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _answer_text(text: str, turn: int, cited: set[int], unsupported: Sequence[str]) -> str:
    spans: list[tuple[int, int]] = []
    for sentence in unsupported:
        i = text.find(sentence) if sentence else -1
        if i >= 0 and all(i >= e or i + len(sentence) <= s for s, e in spans):
            spans.append((i, i + len(sentence)))
    out, pos = [], 0
    for s, e in sorted(spans):
        out.append(_with_markers(text[pos:s], turn, cited))
        out.append(f'<span class="unsupported" title="No valid citation backs this sentence">'
                   f'{_with_markers(text[s:e], turn, cited)}<span class="flag"> ⚠ unsupported</span></span>')
        pos = e
    out.append(_with_markers(text[pos:], turn, cited))
    return "".join(out)


def _with_markers(text: str, turn: int, cited: set[int]) -> str:
    out, pos = [], 0
    for m in _MARKER.finditer(text):
        numbers = [int(x) for x in re.split(r"\s*,\s*", m.group(1))]
        if not all(n in cited for n in numbers):
            continue
        out.append(_e(text[pos:m.start()]))
        out.append("".join(f'<a class="cite" href="#{anchor_id(turn, n)}" title="Show source {n}">[{n}]</a>'
                           for n in numbers))
        pos = m.end()
    out.append(_e(text[pos:]))
    return "".join(out)


def _citation(c: Citation, turn: int, texts: _TextCache) -> str:
    text = texts.get(c.source)
    if text is not None and 0 <= c.start < c.end <= len(text) and text[c.start:c.end].strip():
        ps, pe = c.passage_start, c.passage_end
        if not (0 <= ps <= c.start and c.end <= pe <= len(text)):
            ps, pe = 0, len(text)
        ps, pe = _window(text, ps, c.start, c.end, pe)
        lead = "…" if ps > 0 else ""
        tail = "…" if pe < len(text) else ""
        passage = (f"{lead}{_context(text[ps:c.start])}<mark>{_e(text[c.start:c.end])}</mark>"
                   f"{_context(text[c.end:pe])}{tail}")
    else:  # document changed or gone since indexing: show the stored quote alone
        passage = f"<mark>{_e(c.quote)}</mark>"
    return (f'<details class="source" id="{anchor_id(turn, c.n)}" open>'
            f'<summary><span class="n">[{c.n}]</span> {source_label(c.source, c.headings, c.page)} '
            f'<a class="open-source" href="#{anchor_id(turn, c.n)}" title="Read it in its document">open ›</a>'
            f'</summary>'
            f'<div class="passage">{passage}</div></details>')


def _context(text: str) -> str:
    """Text around a quote, escaped, with blank lines closed up so a source takes little room."""
    return _e(_BLANK_LINES.sub("\n", text))


def _window(text: str, ps: int, start: int, end: int, pe: int) -> tuple[int, int]:
    """The part of the passage ps..pe shown around the quote start..end: at most PASSAGE_CONTEXT characters
    each side, cut at whitespace so no word is split."""
    if start - ps > PASSAGE_CONTEXT:
        cut = start - PASSAGE_CONTEXT
        space = text.find(" ", cut, start)
        ps = space + 1 if space >= 0 else cut
    if pe - end > PASSAGE_CONTEXT:
        cut = end + PASSAGE_CONTEXT
        space = text.rfind(" ", end, cut)
        pe = space if space > end else cut
    return ps, pe


def _hit(h: Hit) -> str:
    return (f'<details class="source" open><summary><span class="score">{h.score:.3f}</span> '
            f'{source_label(h.source, h.headings, h.page)}</summary>'
            f'<div class="passage">{_e(h.text)}</div></details>')


class _TextCache:
    """Document texts fetched once per rendering; None for a document that cannot be read any more."""

    def __init__(self, doc_text: DocText) -> None:
        self._doc_text = doc_text
        self._texts: dict[str, str | None] = {}

    def get(self, source: str) -> str | None:
        if source not in self._texts:
            try:
                self._texts[source] = self._doc_text(source)
            except Exception:  # a missing document must not break the whole answer
                self._texts[source] = None
        return self._texts[source]


CSS = (Path(__file__).with_name("style.css")).read_text(encoding="utf-8")  # the chat's stylesheet
