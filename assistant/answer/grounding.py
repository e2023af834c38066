"""Checks a model's reply against the numbered passages it was given: markers naming no passage are
dropped, the rest renumbered densely, each cited passage quoted by its sentence that best matches the
answer, and sentences that no cited passage backs are reported."""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..records import Citation, Hit
from ..sentences import sentence_spans
from .prompts import ABSTAIN_TEXT, REFUSAL

# Share of an answer sentence's content words that its best quote must contain for the sentence to
# count as supported. Low on purpose: models paraphrase; this catches citations that point elsewhere.
MIN_OVERLAP = 0.2

MARKER = re.compile(r"\[\s*(\d+(?:\s*,\s*\d+)*)\s*\]")  # [3], [1, 2]; [1][2] is two markers
_REWRITTEN = re.compile(r"\[(\d+)\]")  # the one-number markers MarkerRewriter writes
_HELD = re.compile(r"\s*(?:\[[\d,\s]*)?\Z")  # trailing whitespace and a marker that may be unfinished
_DECORATION = " \t\r\n*_`\"'>#"  # what a model may wrap the refusal sentinel in
_WORD = re.compile(r"\w+")
_STOPWORD_TEXT = """
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have having
he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
nor not now of off on once only or other our ours ourselves out over own same she should so some such than
that the their theirs them themselves then there these they this those through to too under until up very
was we were what when where which while who whom why will with would you your yours yourself yourselves
according said says say per among within without upon via
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class Grounded:
    """A reply after checking. `text` carries markers [1], [2] ... that refer to `citations` (Citation.n)."""

    text: str
    citations: tuple[Citation, ...]
    removed: tuple[str, ...]  # markers that named no supplied passage, e.g. ("[7]",)
    unsupported: tuple[str, ...]  # sentences of `text` with no valid marker, or too little in common with it
    refused: bool  # the model answered with the refusal sentinel; `text` is ABSTAIN_TEXT
    notices: tuple[str, ...] = ()  # e.g. a passage that no longer matches its document


def is_refusal(text: str) -> bool:
    """The reply is (or starts with) the refusal sentinel, allowing for markdown around it."""
    return text.lstrip(_DECORATION).startswith(REFUSAL)


def could_be_refusal(prefix: str) -> bool:
    """The start of a streamed reply may still turn out to be the refusal sentinel."""
    head = prefix.lstrip(_DECORATION)
    return REFUSAL.startswith(head) or head.startswith(REFUSAL)


class MarkerRewriter:
    """Rewrites the citation markers of a reply that may arrive in pieces. A marker naming no passage is
    dropped with the spaces before it; valid ones are renumbered densely in order of first appearance and
    written one number per bracket ("[1, 2]" -> "[1][2]", "[1][1]" -> "[1]"). Leading and trailing
    whitespace is dropped.
    Feeding a reply in any split yields the same text as feeding it whole."""

    def __init__(self, passages: int) -> None:
        self.passages = passages
        self.numbers: dict[int, int] = {}  # passage number as supplied -> number in the rewritten text
        self.removed: list[str] = []
        self._held = ""
        self._last = ""  # last character written so far
        self._eat_space = False  # a marker was dropped at the start of a line: drop the spaces after it
        self._group: list[int] = []  # numbers of the markers just written, with no text after them yet

    def feed(self, piece: str) -> str:
        self._held += piece
        return self._drain(final=False)

    def finish(self) -> str:
        return self._drain(final=True)

    def _drain(self, final: bool) -> str:
        text, pos, out = self._held, 0, []
        for m in MARKER.finditer(text):
            before = text[pos:m.start()]
            if before:
                self._group = []
            new = self._renumber(m.group(1))
            if new:
                out.append(self._emit(before) + "".join(f"[{n}]" for n in new if n not in self._group))
                self._group += new
            else:
                kept = before.rstrip(" \t")
                at_line_start = kept.endswith("\n") or (not kept and self._last in ("", "\n"))
                out.append(self._emit(kept))
                self._eat_space = self._eat_space or at_line_start
            pos = m.end()
        rest = text[pos:]
        if final:
            out.append(self._emit(rest.rstrip()))
            self._held = ""
        else:
            hold = _HELD.search(rest)
            cut = hold.start() if hold else len(rest)
            if cut:
                self._group = []
            out.append(self._emit(rest[:cut]))
            self._held = rest[cut:]
        return "".join(out)

    def _emit(self, s: str) -> str:
        if self._eat_space:
            s = s.lstrip(" \t")
        if not self._last:
            s = s.lstrip()
        if s:
            self._eat_space = False
            self._last = s[-1]
        return s

    def _renumber(self, numbers: str) -> list[int]:
        new: list[int] = []
        for k in dict.fromkeys(int(x) for x in re.findall(r"\d+", numbers)):
            if 1 <= k <= self.passages:
                n = self.numbers.setdefault(k, len(self.numbers) + 1)
                if n not in new:
                    new.append(n)
            else:
                self.removed.append(f"[{k}]")
        return new


def ground(text: str, hits: Sequence[Hit], doc_texts: Mapping[str, str] | None = None) -> Grounded:
    """Check `text`, whose markers [n] name hits[n - 1], against the passages. With `doc_texts`
    (source -> document text) every quote's offsets are verified against the document itself."""
    refused = Grounded(ABSTAIN_TEXT, (), (), (), True)
    if is_refusal(text):
        return refused
    rewriter = MarkerRewriter(len(hits))
    clean = rewriter.feed(text.replace(REFUSAL, "")) + rewriter.finish()
    removed = tuple(dict.fromkeys(rewriter.removed))
    if not _WORD.search(_REWRITTEN.sub("", clean)) or (REFUSAL in text and not rewriter.numbers):
        return Grounded(ABSTAIN_TEXT, (), removed, (), True)

    # Sentences are split with the markers blanked out, so "... Amazon.[2] Next" still splits after the
    # period; a marker belongs to the sentence it follows ("Text. [1]") or sits in ("Text [1].").
    masked = _REWRITTEN.sub(lambda m: " " * len(m.group()), clean)
    spans = sentence_spans(masked)
    starts = [s for s, _ in spans]
    cited: list[list[int]] = [[] for _ in spans]
    for m in _REWRITTEN.finditer(clean):
        if spans:
            cited[max(0, bisect.bisect_right(starts, m.start()) - 1)].append(int(m.group(1)))

    passage_of = {n: hits[k - 1] for k, n in rewriter.numbers.items()}
    passage_sentences = {n: _sentences(hit.text) for n, hit in passage_of.items()}
    best: dict[int, tuple[tuple[float, float], int, int]] = {}
    unsupported: list[str] = []
    for (s, e), numbers in zip(spans, cited, strict=True):
        words = _content_words(masked[s:e])
        if not numbers:
            if _WORD.search(masked[s:e]):
                unsupported.append(clean[s:e])
            continue
        support = 0.0
        for n in dict.fromkeys(numbers):
            score, qs, qe = _best_sentence(words, passage_sentences[n])
            support = max(support, score[0])
            if n not in best or score > best[n][0]:
                best[n] = (score, qs, qe)
        if words and support < MIN_OVERLAP:
            unsupported.append(clean[s:e])

    citations: list[Citation] = []
    notices: list[str] = []
    for n, hit in sorted(passage_of.items()):
        if n in best:
            _, qs, qe = best[n]
        else:  # cited, but by no sentence (the reply was nothing but markers)
            qs, qe = passage_sentences[n][0][:2] if passage_sentences[n] else (0, 0)
        citations.append(_citation(n, hit, qs, qe, doc_texts, notices))
    return Grounded(clean, tuple(citations), removed, tuple(unsupported), False, tuple(notices))


def _content_words(text: str) -> frozenset[str]:
    words = set()
    for w in _WORD.findall(text.lower()):
        if w in _STOPWORDS or (len(w) == 1 and not w.isdigit()):
            continue
        if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]  # a crude plural fold: "employees" matches "employee"
        words.add(w)
    return frozenset(words)


def _sentences(passage: str) -> list[tuple[int, int, frozenset[str]]]:
    return [(s, e, _content_words(passage[s:e])) for s, e in sentence_spans(passage)]


def _best_sentence(words: frozenset[str], sentences: list[tuple[int, int, frozenset[str]]]
                   ) -> tuple[tuple[float, float], int, int]:
    """The passage sentence sharing the most of `words`; ties go to the tighter, then the earlier one.
    The score is (share of `words` found, share of the sentence's words used)."""
    best: tuple[tuple[float, float], int, int] = ((0.0, 0.0), *(sentences[0][:2] if sentences else (0, 0)))
    for s, e, toks in sentences:
        common = len(words & toks)
        score = (common / len(words) if words else 0.0, common / len(toks) if toks else 0.0)
        if score > best[0]:
            best = (score, s, e)
    return best


def _citation(n: int, hit: Hit, qs: int, qe: int, doc_texts: Mapping[str, str] | None,
              notices: list[str]) -> Citation:
    quote = hit.text[qs:qe]
    start, end = hit.start + qs, hit.start + qe
    doc = doc_texts.get(hit.source) if doc_texts is not None else None
    if doc is not None and doc[start:end] != quote:
        found = _nearest(doc, quote, start)
        if found is None:
            notices.append(f"citation [{n}]: {hit.source} changed after it was indexed; rebuild the index")
        else:
            start, end = found, found + len(quote)
    return Citation(n, hit.source, start, end, quote, hit.headings, hit.page, hit.start, hit.end)


def _nearest(doc: str, quote: str, near: int) -> int | None:
    """The offset of the occurrence of `quote` in `doc` closest to `near`, if any."""
    if not quote:
        return None
    best, i = None, doc.find(quote)
    while i != -1:
        if best is None or abs(i - near) < abs(best - near):
            best = i
        i = doc.find(quote, i + 1)
    return best
