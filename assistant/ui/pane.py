"""The source pane: a cited document rendered as readable text (headings, paragraphs, code blocks, tables),
with the quoted sentences of one answer marked and the active one highlighted. Built from the document's
loaded text, the text citation offsets index, so a mark is exactly the quoted characters. Every character of
the document is html-escaped here."""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from ..records import Citation, Document

MAX_PANE_CHARS = 120_000  # a longer document shows this much around the active quote
_FENCE = re.compile(r"^\s*(```|~~~)")
_RULE = re.compile(r"^\s*([=\-~^\"'`#*+.:_])\1{2,}\s*$")  # rst over/underlines, markdown rules
_SEPARATOR_ROW = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_HEADING_MARKS = re.compile(r"^\s*(#{1,6}|={1,6})\s+")  # markdown "## " and asciidoc "== " prefixes


@dataclass(frozen=True, slots=True)
class Mark:
    start: int
    end: int
    n: int
    active: bool


def render_pane(doc: Document, citations: Sequence[Citation], active: Citation, position: tuple[int, int]) -> str:
    """The whole pane for `active` (citation number position[0] of position[1] in its answer): breadcrumb,
    then the document (for a PDF, the page that holds the quote) with every citation of `citations` that
    falls in `doc` marked."""
    text = doc.text
    marks = [Mark(c.start, c.end, c.n, c is active) for c in citations
             if c.source == doc.path and 0 <= c.start < c.end <= len(text) and text[c.start:c.end] == c.quote]
    valid = any(m.active for m in marks)
    lo, hi, note = 0, len(text), ""
    page = doc.page_at(active.start) if doc.pages else None
    if page is not None:
        lo = doc.pages[page - 1]
        hi = doc.pages[page] if page < len(doc.pages) else len(text)
        note = f"page {page} of {len(doc.pages)}"
    if hi - lo > MAX_PANE_CHARS:
        centre = active.start if valid else lo
        lo = max(lo, _line_start(text, centre - MAX_PANE_CHARS // 2))
        hi = min(hi, lo + MAX_PANE_CHARS)
    crumbs = [f'<span class="doc">{escape(doc.path)}</span>']
    headings = [h for h in doc.heading_path(active.start) if h]
    if doc.title and doc.title != doc.path and doc.title not in headings[:1]:
        crumbs.append(f'<span class="title">{escape(doc.title)}</span>')
    crumbs += [f'<span class="where">{escape(h)}</span>' for h in headings]
    if note:
        crumbs.append(f'<span class="page">{escape(note)}</span>')
    head = (f'<div class="pane-head"><span class="pane-n">[{active.n}] · citation {position[0]} of '
            f'{position[1]}</span><nav class="breadcrumb">{" › ".join(crumbs)}</nav></div>')
    warn = "" if valid else ('<p class="notice">ℹ The document changed since this answer: the quoted sentence is '
                             f'no longer at its place. Quoted: <mark>{escape(active.quote)}</mark></p>')
    before = f'<p class="cut">… {lo:,} characters before</p>' if lo > 0 and page is None else ""
    after = f'<p class="cut">… {len(text) - hi:,} characters after</p>' if hi < len(text) and page is None else ""
    starts = {s.start: s.level for s in doc.sections}
    body = render_text(text, lo, hi, marks, starts)
    return f'<div class="pane">{head}{warn}<article class="doc-body">{before}{body}{after}</article></div>'


def render_text(text: str, lo: int, hi: int, marks: Sequence[Mark], headings: dict[int, int]) -> str:
    """text[lo:hi] as HTML blocks. `headings`: offset -> level of each section start (a heading line)."""
    lines = _lines(text, lo, hi)
    starts = [ls for ls, _ in lines]
    heading_at: dict[int, int] = {}
    for s, level in headings.items():
        i = bisect.bisect_right(starts, s) - 1
        if i >= 0 and s <= lines[i][1]:
            heading_at[lines[i][0]] = level
    out: list[str] = []
    i = 0
    while i < len(lines):
        s, e = lines[i]
        line = text[s:e]
        if not line.strip():
            i += 1
            continue
        if _FENCE.match(line):  # a fenced code block, fences included (they may hold a quote's offsets)
            j = i + 1
            while j < len(lines) and not _FENCE.match(text[lines[j][0]:lines[j][1]]):
                j += 1
            j = min(j, len(lines) - 1)
            out.append(f'<pre class="code"><code>{_span(text, s, lines[j][1], marks)}</code></pre>')
            i = j + 1
            continue
        if s in heading_at:
            level = min(max(heading_at[s], 1), 5) + 1  # h2..h6: the pane's own title is the breadcrumb
            m = _HEADING_MARKS.match(line)
            hs = s + (m.end() if m else 0)
            out.append(f'<h{level} class="heading">{_span(text, hs, e, marks)}</h{level}>')
            i += 1
            if i < len(lines) and _RULE.match(text[lines[i][0]:lines[i][1]]):
                i += 1  # the rst underline
            continue
        if _RULE.match(line):
            i += 1
            continue
        cells = _cells(text, s, e)
        if cells is not None:
            rows = [cells]
            j = i + 1
            while j < len(lines):
                ls, le = lines[j]
                if _SEPARATOR_ROW.match(text[ls:le]) and "-" in text[ls:le]:
                    j += 1
                    continue
                more = _cells(text, ls, le)
                if more is None or len(more) != len(cells):
                    break
                rows.append(more)
                j += 1
            if len(rows) >= 2:
                body = "".join("<tr>" + "".join(f"<td>{_span(text, a, b, marks)}</td>" for a, b in r) + "</tr>"
                               for r in rows)
                out.append(f'<div class="table-wrap"><table class="doc-table">{body}</table></div>')
                i = j
                continue
        j = i + 1  # a paragraph: up to the next blank line, heading or fence
        while j < len(lines):
            ls, le = lines[j]
            if not text[ls:le].strip() or ls in heading_at or _FENCE.match(text[ls:le]):
                break
            j += 1
        pe = lines[j - 1][1]
        out.append(f'<p class="para">{_span(text, s, pe, marks)}</p>')
        i = j
    return "".join(out)


def _lines(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    out = []
    pos = lo
    while pos < hi:
        nl = text.find("\n", pos, hi)
        end = hi if nl < 0 else nl
        out.append((pos, end))
        pos = end + 1
    return out


def _line_start(text: str, pos: int) -> int:
    pos = max(0, pos)
    nl = text.rfind("\n", 0, pos)
    return nl + 1


def _cells(text: str, s: int, e: int) -> list[tuple[int, int]] | None:
    """The cells of a table row, as spans: "a | b | c" (HTML, Office tables) or "| a | b |" (Markdown)."""
    line = text[s:e]
    if " | " not in line and not (line.lstrip().startswith("|") and line.rstrip().endswith("|")):
        return None
    spans, pos = [], s
    for part in line.split("|"):
        a, b = pos, pos + len(part)
        pos = b + 1
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        spans.append((a, b))
    stripped = line.strip()
    if stripped.startswith("|"):
        spans = spans[1:]
    if stripped.endswith("|"):
        spans = spans[:-1]
    return spans if len(spans) >= 2 else None


def _span(text: str, s: int, e: int, marks: Sequence[Mark]) -> str:
    """text[s:e] escaped, with the parts that fall in `marks` wrapped in <mark>; the active quote's first
    piece carries id="pane-active" so the page can scroll to it."""
    inside = [m for m in marks if m.start < e and m.end > s]
    if not inside:
        return escape(text[s:e])
    cuts = sorted({s, e, *(max(s, m.start) for m in inside), *(min(e, m.end) for m in inside)})
    out = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        over = [m for m in inside if m.start <= a and m.end >= b]
        piece = escape(text[a:b])
        if not over:
            out.append(piece)
            continue
        active = next((m for m in over if m.active), None)
        n = (active or over[0]).n
        first = active is not None and a == max(s, active.start)
        attrs = ' id="pane-active"' if first and active.start >= s else ""
        cls = "quote active" if active else "quote"
        out.append(f'<mark class="{cls}" data-n="{n}"{attrs}>{piece}</mark>')
    return "".join(out)
