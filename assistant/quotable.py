"""Which sentences of a document an extractive answer may quote, and the questions that introduce them.

Shared by the index, which embeds these texts once when a document is indexed, and by the answerer,
which scores them at question time: both must cut the same strings, so that a vector stored by text
is found again for exactly the words it describes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .records import Document
from .sentences import paragraph_spans, sentence_spans

_TERMINAL = re.compile(r"[.!?…:;]['\"”’)\]]*$")
_WORD = re.compile(r"\w+")


def is_statement(text: str) -> bool:
    """Prose worth quoting: not a heading, a question, code, a shell line or a table row."""
    words = _WORD.findall(text)
    if len(words) < 4 or text.rstrip().endswith("?"):
        return False
    stripped = text.lstrip()
    if stripped.startswith((">>>", "...", "$ ", "#", "|")):
        return False  # interactive sessions, shell lines, comments, table rows: not prose to quote
    letters = sum(ch.isalpha() for ch in stripped)
    if letters < 0.6 * sum(not ch.isspace() for ch in stripped):
        return False  # mostly code or symbols
    # Headings and labels: short and without end punctuation.
    return bool(_TERMINAL.search(text.rstrip())) or len(words) >= 12


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
    """(paragraph start, sentence start, sentence end) of the quotable sentences of text[start:end]."""
    for ps, pe in paragraph_spans(text, start, end):
        for s, e in sentence_spans(text, ps, pe):
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
