"""Which sentences of a document an extractive answer may quote, and the questions that introduce them.

Shared by the index, which embeds these texts once when a document is indexed, and by the answerer,
which scores them at question time: both must cut the same strings, so that a vector stored by text
is found again for exactly the words it describes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .records import Document
from .sentences import CELL, paragraph_spans, row_spans, sentence_spans

VERSION = 2  # of the rules below: the sentence store embeds again what a new version cuts (index/sentvec.py)
_TERMINAL = re.compile(r"[.!?…:;]['\"”’)\]]*$")
_WORD = re.compile(r"\w+")
_LETTERS = re.compile(r"[^\W\d_]{3}")


def is_statement(text: str) -> bool:
    """Prose worth quoting, or a row of a table ("columns per table | 1,600"): not a heading, a question,
    code, a shell line or a reST/Markdown table line."""
    stripped = text.lstrip()
    if stripped.startswith((">>>", "...", "$ ", "#", "|")):
        return False  # interactive sessions, shell lines, comments, table rules: not prose to quote
    if CELL in text and "\n" not in text.strip():
        return is_row(text)
    words = _WORD.findall(text)
    if len(words) < 4 or text.rstrip().endswith("?"):
        return False
    letters = sum(ch.isalpha() for ch in stripped)
    if letters < 0.6 * sum(not ch.isspace() for ch in stripped):
        return False  # mostly code or symbols
    # Headings and labels: short and without end punctuation.
    return bool(_TERMINAL.search(text.rstrip())) or len(words) >= 12


def is_row(text: str) -> bool:
    """A table row worth quoting: two cells or more, none empty, one of them with a word in it
    ("23505 | unique_violation", "field size | 1 GB"; not "1 | 2")."""
    cells = [c.strip() for c in text.strip().split(CELL)]
    return len(cells) >= 2 and all(cells) and any(_LETTERS.search(c) for c in cells)


def question_before(doc_text: str, doc: Document | None, para_start: int) -> tuple[int, int]:
    """A question that introduces the paragraph at `para_start`: the previous paragraph when it is one
    sentence ending in '?', or else the enclosing heading when it ends in '?'. (-1, -1) when none."""
    back = doc_text.rfind("\n\n", 0, max(0, para_start - 1))
    prev = paragraph_spans(doc_text, back + 1 if back >= 0 else 0, para_start)
    if prev:
        s, e = prev[-1]
        if doc_text[s:e].rstrip().endswith("?") and len(sentence_spans(doc_text, s, e)) == 1:
            return s, e
    if doc is not None:
        for sec in reversed(doc.sections):
            if sec.start <= para_start:
                if sec.title.rstrip().endswith("?"):
                    return sec.start, sec.start + len(sec.title)
                break
    return -1, -1


def quotable_spans(text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int]]:
    """(paragraph start, start, end) of the quotable sentences and table rows of text[start:end]."""
    for ps, pe in paragraph_spans(text, start, end):
        for ss, se in sentence_spans(text, ps, pe):
            for s, e in row_spans(text, ss, se):
                if is_statement(text[s:e]):
                    yield ps, s, e


def quotable_texts(doc: Document) -> list[str]:
    """Every text the answerer may embed for `doc`: its quotable sentences and the questions that
    introduce their paragraphs (FAQ entries, headings ending in '?'), each once, in document order."""
    text = doc.text
    out: dict[str, None] = {}
    last_para = -1
    for ps, s, e in quotable_spans(text):
        if ps != last_para:
            last_para = ps
            qs, qe = question_before(text, doc, ps)
            if qs >= 0:
                out.setdefault(text[qs:qe], None)
        out.setdefault(text[s:e], None)
    return list(out)
