"""HTML for the web chat: answers with [n] marker links, their sources with the quoted sentence highlighted,
and the raw retrieved passages. Every piece of text from a document, a user or a model is html-escaped
here; nothing else in the UI builds HTML from such text."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from html import escape

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


def render_answer(answer: Answer, turn: int, doc_text: DocText) -> str:
    """The whole assistant message for a finished answer: text with marker links, the flagged unsupported
    sentences, notices, and the cited sources (or, when the answer abstains, the closest passages)."""
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
        items = "".join(_hit(h) for h in answer.hits[:3])
        parts.append(f'<div class="sources closest"><div class="sources-title">{title}</div>{items}</div>')
    parts.append(f'<div class="meta">{_e(answer.mode)} answer</div>')
    return f'<div class="answer{" is-abstained" if answer.abstained else ""}">{"".join(parts)}</div>'


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
            f'<summary><span class="n">[{c.n}]</span> {source_label(c.source, c.headings, c.page)}</summary>'
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


CSS = """
.chat-msg .q-text, .answer-text { white-space: pre-wrap; }
.answer .cite { font-weight: 600; color: var(--link-text-color); text-decoration: none; padding: 0 1px; }
.answer .cite:hover { text-decoration: underline; }
.answer .abstained { font-weight: 600; margin: 0 0 .4em; }
.answer .unsupported { background: rgba(255, 170, 0, .18); border-bottom: 1px dashed #c77700; }
.answer .unsupported .flag { color: #c77700; font-size: .85em; }
.answer .unsupported-note, .answer .notice, .answer .meta { font-size: .85em; opacity: .8; margin: .4em 0 0; }
.answer .sources { margin-top: .6em; border-top: 1px solid var(--border-color-primary); padding-top: .4em; }
.answer .sources-title { font-size: .8em; text-transform: uppercase; letter-spacing: .05em; opacity: .7; }
.answer details.source { margin: .35em 0; scroll-margin-top: 4em; }
.answer details.source:target { outline: 2px solid var(--color-accent); outline-offset: 2px;
  border-radius: 4px; }
.answer details.source summary { cursor: pointer; font-size: .9em; }
.answer .source .doc { font-weight: 600; }
.answer .source .where, .answer .source .page, .answer .source .score { opacity: .75; }
.answer .passage, .hits .passage { white-space: pre-wrap; font-size: .9em; margin: .25em 0 0 1em;
  padding-left: .6em; border-left: 3px solid var(--border-color-primary); }
.answer mark { background: #ffe066; color: #000; padding: 0 1px; }
.error { color: #b00020; }
.hits { font-size: .85em; border-collapse: collapse; }
.hits td, .hits th { border-bottom: 1px solid var(--border-color-primary); padding: 4px 6px;
  vertical-align: top; }
.hits .passage { margin: 0; max-height: 12em; overflow: auto; }
.status-box .ok { color: #1b7f3b; }
"""
