"""Sentence and paragraph spans of plain text. Offsets, not strings, so callers can always quote the source."""

from __future__ import annotations

import re

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) before whitespace, or at a
# blank line / a line break that ends a heading-like line. Abbreviations are handled by a small list.
_END = re.compile(r"""[.!?…](?:["'”’)\]]*)(?=\s)|\n[ \t]*\n|\n(?=[ \t]*(?:[-*•]|\d+[.)])\s)""")
_ABBREV = frozenset(
    "e.g i.e etc vs mr mrs ms dr prof st jr sr inc ltd co corp no fig eq approx cf al ca dept est".split()
)
_PARA = re.compile(r"\n[ \t]*\n")
CELL = " | "  # how the HTML and Office loaders write a table: a row per line, its cells joined by this


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _number_before(text: str, pos: int, end: int) -> bool:
    """Whether text[pos:end], from its last line break on, is a number between spaces: "  12". Reads only
    the digits and spaces just before `end`, so that a long line of sentences costs linear time."""
    i = end
    while i > pos and text[i - 1] != "\n" and text[i - 1].isspace():
        i -= 1
    j = i
    while j > pos and text[j - 1].isdigit():
        j -= 1
    if j == i:
        return False
    while j > pos and text[j - 1] != "\n" and text[j - 1].isspace():
        j -= 1
    return j == pos or text[j - 1] == "\n"


def paragraph_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans of the blank-line separated blocks of text[start:end], whitespace trimmed."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    pos = start
    for m in _PARA.finditer(text, start, end):
        s, e = _trim(text, pos, m.start())
        if e > s:
            spans.append((s, e))
        pos = m.end()
    s, e = _trim(text, pos, end)
    if e > s:
        spans.append((s, e))
    return spans


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans of the sentences of text[start:end], whitespace trimmed. A single line break inside a
    paragraph does not end a sentence; a blank line always does; so does a line that has no end
    punctuation when the next line starts a list item."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    pos = start
    for m in _END.finditer(text, start, end):
        cut = m.end()
        if text[m.start()] == ".":
            word = re.search(r"([A-Za-z][A-Za-z.]*)\.$", text[max(pos, m.start() - 12):m.start() + 1])
            if word and (word.group(1).lower().rstrip(".") in _ABBREV or len(word.group(1)) == 1):
                continue
            if _number_before(text, pos, m.start()):
                continue  # "1. The Amazon Connection": a numbered heading or list item
            nxt = text[cut:cut + 2].lstrip()
            if nxt[:1].islower():
                continue  # "e.g. foo", "3. the": a lowercase continuation is not a new sentence
        s, e = _trim(text, pos, cut)
        if e > s:
            spans.append((s, e))
        pos = cut
    s, e = _trim(text, pos, end)
    if e > s:
        spans.append((s, e))
    return spans


def row_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The lines of text[start:end] when it holds a table as the loaders write one (two or more lines of
    cells joined by CELL): each row, and each line between rows ("Class 23 — Integrity Constraint
    Violation"), is its own unit, "23505 | unique_violation" or "field size | 1 GB", not the whole table
    as one sentence. Any other span comes back as it is."""
    if text.count(CELL, start, end) < 2 or text.find("\n", start, end) < 0:
        return [(start, end)]
    lines: list[tuple[int, int]] = []
    pos = start
    while pos < end:
        nl = text.find("\n", pos, end)
        stop = end if nl < 0 else nl
        s, e = _trim(text, pos, stop)
        if e > s:
            lines.append((s, e))
        pos = stop + 1
    if sum(CELL in text[s:e] for s, e in lines) < 2:
        return [(start, end)]
    return lines
