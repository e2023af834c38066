"""Evaluation metrics: pure functions over hits, answers and gold data, each returning a `Score`
(the overall value and one value per question; None where the metric does not apply to a question).

Relevance, precisely. A question's gold evidence is a set of spans `(source, start, end)`: every place
where one of its gold quotes occurs in one of its gold sources (found with `locate`). A retrieved hit is
*relevant* when its source is a gold source and its span `[start, end)` contains a whole gold span of that
source. Any one gold quote is enough, except for questions that need every gold document (`needs_all`,
the multi-document questions): their recall is the fraction of gold sources with a relevant hit, and
nDCG's ideal ranking has one relevant hit per gold source. Source recall drops the quote condition; quote
recall drops the source and offset conditions and only asks whether some gold quote is a substring of
some hit's text, after whitespace normalisation, so it still works when hit offsets or the loader's text
differ from the files on disk.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..records import Answer, Hit

Span = tuple[str, int, int]  # (source, start, end) in the loaded text of `source`


@dataclass(frozen=True)
class Score:
    """A metric's overall value and its value for each question (None: not applicable)."""

    value: float | None
    per_question: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class Gold:
    """What a question expects, in the form the metrics need."""

    answerable: bool
    sources: tuple[str, ...] = ()
    quotes: tuple[str, ...] = ()
    spans: tuple[Span, ...] = ()  # the gold quotes located in the loaded gold documents
    answer: str = ""
    needs_all: bool = False  # every gold source must be retrieved (multi-document questions)

    @property
    def evidence_sources(self) -> tuple[str, ...]:
        """The gold sources in which some gold quote was located."""
        found = {s for s, _, _ in self.spans}
        return tuple(s for s in self.sources if s in found)

    @property
    def units(self) -> int:
        """How many relevant hits make a perfect retrieval: one per evidence source, or just one."""
        return len(self.evidence_sources) if self.needs_all else min(1, len(self.evidence_sources))


# --- text helpers -----------------------------------------------------------------------------------

_WS = re.compile(r"\s+")


def normalize_ws(text: str) -> str:
    """Collapse every run of whitespace to one space and strip the ends."""
    return _WS.sub(" ", text).strip()


def locate(quote: str, text: str) -> list[tuple[int, int]]:
    """Every span of `text` that matches `quote`, where any run of whitespace matches any other run."""
    words = quote.split()
    if not words:
        return []
    pattern = re.compile(r"\s+".join(re.escape(w) for w in words))
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def gold_spans(sources: Sequence[str], quotes: Sequence[str],
               doc_text: Callable[[str], str | None]) -> tuple[Span, ...]:
    """Locate each quote in each source (`doc_text` returns None for a source that is not loaded)."""
    spans: list[Span] = []
    for source in sources:
        text = doc_text(source)
        if text is None:
            continue
        for quote in quotes:
            spans.extend((source, s, e) for s, e in locate(quote, text))
    return tuple(sorted(set(spans)))


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the values that are not None (None when there are none)."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


# --- retrieval --------------------------------------------------------------------------------------

def is_relevant(hit: Hit, gold: Gold) -> bool:
    """The hit's source is a gold source and its span contains a whole gold span of that source."""
    return any(s == hit.source and hit.start <= gs and ge <= hit.end for s, gs, ge in gold.spans)


def _credits(hits: Sequence[Hit], gold: Gold) -> list[bool]:
    """For each hit: does it earn credit? Only the first relevant hit does, or with `needs_all` the first
    relevant hit of each gold source, so duplicates are never rewarded twice."""
    seen: set[str] = set()
    out = []
    for hit in hits:
        new = len(seen) < gold.units and hit.source not in seen and is_relevant(hit, gold)
        if new:
            seen.add(hit.source)
        out.append(new)
    return out


def _per_question(hits_per_q: Sequence[Sequence[Hit]], golds: Sequence[Gold],
                  fn: Callable[[Sequence[Hit], Gold], float]) -> Score:
    """Apply `fn` to each answerable question that has gold evidence; the rest get None."""
    if len(hits_per_q) != len(golds):
        raise ValueError(f"{len(hits_per_q)} hit lists for {len(golds)} questions")
    per = tuple(fn(hits, g) if g.answerable and g.evidence_sources else None
                for hits, g in zip(hits_per_q, golds, strict=True))
    return Score(mean(per), per)


def recall_at_k(hits_per_q: Sequence[Sequence[Hit]], golds: Sequence[Gold], k: int) -> Score:
    """1 when a relevant hit is among the first k; with `needs_all`, the fraction of evidence sources that
    have one."""
    def one(hits: Sequence[Hit], g: Gold) -> float:
        return sum(_credits(hits[:k], g)) / g.units
    return _per_question(hits_per_q, golds, one)


def hit_at_1(hits_per_q: Sequence[Sequence[Hit]], golds: Sequence[Gold]) -> Score:
    """1 when the first hit is relevant."""
    return _per_question(hits_per_q, golds, lambda hits, g: float(bool(hits) and is_relevant(hits[0], g)))


def source_recall_at_k(hits_per_q: Sequence[Sequence[Hit]], golds: Sequence[Gold], k: int) -> Score:
    """As recall@k with the quote condition dropped: some (with `needs_all`: each) evidence source appears
    among the first k hits."""
    def one(hits: Sequence[Hit], g: Gold) -> float:
        got = sum(s in {h.source for h in hits[:k]} for s in g.evidence_sources)
        return got / len(g.evidence_sources) if g.needs_all else float(got > 0)
    return _per_question(hits_per_q, golds, one)


def quote_recall_at_k(hits_per_q: Sequence[Sequence[Hit]], golds: Sequence[Gold], k: int) -> Score:
    """1 when some gold quote is a substring of some first-k hit's text (whitespace normalised).

    Applies to every answerable question with gold quotes, whether or not they were located."""
    if len(hits_per_q) != len(golds):
        raise ValueError(f"{len(hits_per_q)} hit lists for {len(golds)} questions")
    per: list[float | None] = []
    for hits, g in zip(hits_per_q, golds, strict=True):
        if not g.answerable or not g.quotes:
            per.append(None)
            continue
        texts = [normalize_ws(h.text) for h in hits[:k]]
        quotes = [normalize_ws(q) for q in g.quotes]
        per.append(float(any(q in t for q in quotes for t in texts)))
    return Score(mean(per), tuple(per))


def mrr(hits_per_q: Sequence[Sequence[Hit]], golds: Sequence[Gold], k: int | None = None) -> Score:
    """Mean reciprocal rank of the first relevant hit (0 when none is within the first k)."""
    def one(hits: Sequence[Hit], g: Gold) -> float:
        for i, hit in enumerate(hits[:k], start=1):
            if is_relevant(hit, g):
                return 1.0 / i
        return 0.0
    return _per_question(hits_per_q, golds, one)


def ndcg_at_k(hits_per_q: Sequence[Sequence[Hit]], golds: Sequence[Gold], k: int = 10) -> Score:
    """Binary-gain nDCG: a hit gains 1 when it earns credit (see recall@k); the ideal ranking puts the
    needed relevant hits (one, or one per evidence source) first."""
    def one(hits: Sequence[Hit], g: Gold) -> float:
        dcg = sum(1.0 / math.log2(i + 2) for i, c in enumerate(_credits(hits[:k], g)) if c)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, g.units)))
        return dcg / ideal
    return _per_question(hits_per_q, golds, one)


# --- answers ----------------------------------------------------------------------------------------

_MARKER = re.compile(r"\[\d+(?:\s*[,;]\s*\d+)*\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation) | set("‘’“”–—…")


def strip_markers(text: str) -> str:
    """Remove citation markers such as [1] or [2, 3]."""
    return _MARKER.sub("", text)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def f1(prediction: str, truth: str) -> float:
    """SQuAD token F1 between two strings (1.0 when both normalise to nothing)."""
    pred = normalize_answer(strip_markers(prediction)).split()
    gold = normalize_answer(truth).split()
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(answers: Sequence[Answer], golds: Sequence[Gold]) -> Score:
    """Token F1 of each answer's text against the gold answer; an abstention on an answerable question
    scores 0; unanswerable questions are left to the abstention metrics."""
    per = tuple(
        None if not g.answerable else 0.0 if a.abstained else f1(a.text, g.answer)
        for a, g in zip(answers, golds, strict=True))
    return Score(mean(per), per)


def _overlaps(a: Span, b: Span) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def quote_support(answers: Sequence[Answer], golds: Sequence[Gold]) -> Score:
    """1 when some citation's span overlaps a gold span in the same source (answerable questions with
    located gold evidence; an abstention or an answer without citations scores 0)."""
    per: list[float | None] = []
    for a, g in zip(answers, golds, strict=True):
        if not g.answerable or not g.spans:
            per.append(None)
            continue
        cited = [(c.source, c.start, c.end) for c in a.citations] if not a.abstained else []
        per.append(float(any(_overlaps(c, s) for c in cited for s in g.spans)))
    return Score(mean(per), tuple(per))


def citation_precision(answers: Sequence[Answer], golds: Sequence[Gold],
                       doc_texts: Mapping[str, str]) -> Score:
    """Fraction of citations that are valid: the quote is exactly `doc_text[start:end]` of its cited
    document and, for answerable questions, the source is a gold source. Overall: over all citations
    (micro average); per question: None when the answer has no citations."""
    per: list[float | None] = []
    valid = total = 0
    for a, g in zip(answers, golds, strict=True):
        good = 0
        for c in a.citations:
            text = doc_texts.get(c.source)
            ok = text is not None and 0 <= c.start <= c.end <= len(text) and text[c.start:c.end] == c.quote
            good += int(ok and (not g.answerable or c.source in g.sources))
        per.append(good / len(a.citations) if a.citations else None)
        valid += good
        total += len(a.citations)
    return Score(valid / total if total else None, tuple(per))


# --- abstention -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AbstentionScores:
    """Positive class = abstained. Precision: abstentions that were right; recall: unanswerable
    questions that were abstained on; accuracy: questions where abstaining or not was right."""

    precision: Score
    recall: Score
    accuracy: Score
    counts: dict[str, int] = field(default_factory=dict)  # tp, fp, fn, tn


def abstention(abstained: Sequence[bool], answerable: Sequence[bool]) -> AbstentionScores:
    if len(abstained) != len(answerable):
        raise ValueError(f"{len(abstained)} answers for {len(answerable)} questions")
    pairs = list(zip(abstained, answerable, strict=True))
    tp = sum(a and not ok for a, ok in pairs)
    fp = sum(a and ok for a, ok in pairs)
    fn = sum(not a and not ok for a, ok in pairs)
    tn = sum(not a and ok for a, ok in pairs)
    # Per question: precision is defined on abstentions, recall on unanswerable questions.
    prec = tuple(float(not ok) if a else None for a, ok in pairs)
    rec = tuple(float(a) if not ok else None for a, ok in pairs)
    acc = tuple(float(a != ok) for a, ok in pairs)
    return AbstentionScores(
        precision=Score(tp / (tp + fp) if tp + fp else None, prec),
        recall=Score(tp / (tp + fn) if tp + fn else None, rec),
        accuracy=Score(mean(acc), acc),
        counts={"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    )


def false_abstention(abstained: Sequence[bool], answerable: Sequence[bool]) -> Score:
    """The share of answerable questions that were abstained on (per question: 1 or 0; None for the
    unanswerable ones): abstention's cost, which its recall alone hides."""
    if len(abstained) != len(answerable):
        raise ValueError(f"{len(abstained)} answers for {len(answerable)} questions")
    per = tuple(float(a) if ok else None for a, ok in zip(abstained, answerable, strict=True))
    return Score(mean(per), per)


# --- latency ----------------------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between order statistics, like numpy."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latency(ms: Sequence[float]) -> dict[str, Score]:
    """p50 and p95 of per-question latencies in milliseconds."""
    per = tuple(float(v) for v in ms)
    return {"p50": Score(percentile(per, 50), per), "p95": Score(percentile(per, 95), per)}
