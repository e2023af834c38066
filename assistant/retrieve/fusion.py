"""Reciprocal rank fusion and the merging of overlapping passages. Pure functions."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from ..records import Chunk, Hit

K = TypeVar("K", bound=Hashable)


def rrf(rankings: Sequence[Sequence[K]], weights: Sequence[float] | None = None, k: int = 60
        ) -> list[tuple[K, float]]:
    """Fuse rankings (best first): score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1. Ties keep the order
    in which items were first seen."""
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    scores: dict[K, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for r, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + w / (k + r)
    return sorted(scores.items(), key=lambda kv: -kv[1])


@dataclass(frozen=True, slots=True)
class Candidate:
    chunk: Chunk
    score: float
    dense: float | None = None
    bm25: float | None = None


def merge_overlapping(candidates: Sequence[Candidate], doc_texts: Mapping[str, str], k: int, gap: int = 0,
                      max_chars: int = 0, touch: int = 0) -> list[Hit]:
    """Turn fused candidates (best first) into at most `k` hits, merging a candidate into an earlier hit of
    the same document when their spans overlap or touch; the merged hit keeps the earlier rank and score.
    With `gap` > 0, a candidate of the same section (heading path) at most `gap` characters from an earlier
    hit joins it too, the text between them included, while the joined hit stays within `max_chars` (0: any
    length) and overlaps no other hit: three fragments of one short section become one passage, and two
    slots go to other passages. With `touch` > 0, a candidate at most `touch` characters from an earlier hit with only
    whitespace between joins it whatever its section, within `max_chars`: a section's last chunk and the
    next section's first (its heading) are one run of text, split only by the chunker.

    A chunk's text is its document's text[start:end] (Chunk.make), so a hit's text is put together from its
    chunks' and no document is read (at a million chunks the documents of the hits are rarely cached);
    `doc_texts` is read only for a group whose chunks do not agree on the text they share, or that a gap
    or touch join filled in (and to see that a touch join's gap is whitespace)."""
    groups: list[dict] = []
    for c in candidates:
        ch = c.chunk
        g = next((g for g in groups if g["source"] == ch.source and ch.start <= g["end"] and ch.end >= g["start"]),
                 None)
        if g is None and touch > 0:
            g = next((g for g in groups if _only_space_between(g, ch, touch, max_chars, doc_texts)), None)
        if g is None and gap > 0:
            g = next((g for g in groups if _near(g, ch, gap, max_chars, groups)), None)
        if g is not None:
            apart = ch.start > g["end"] or ch.end < g["start"]
            g["text"] = None if apart else _joined(g["text"], g["start"], g["end"], ch)
            g["start"], g["end"] = min(g["start"], ch.start), max(g["end"], ch.end)
            g["ids"].append(ch.id)
            g["dense"] = _max(g["dense"], c.dense)
            g["bm25"] = _max(g["bm25"], c.bm25)
            if ch.start < g["first"].start:
                g["first"] = ch
            continue
        if len(groups) >= k:
            continue
        groups.append({"source": ch.source, "start": ch.start, "end": ch.end, "ids": [ch.id],
                       "score": c.score, "dense": c.dense, "bm25": c.bm25, "first": ch,
                       "text": ch.text if len(ch.text) == ch.end - ch.start else None})
    hits = []
    for rank, g in enumerate(groups, start=1):
        text = g["text"] if g["text"] is not None else doc_texts[g["source"]][g["start"]:g["end"]]
        first: Chunk = g["first"]
        hits.append(Hit(rank, g["score"], g["source"], g["start"], g["end"], text, first.headings, first.page,
                        tuple(g["ids"]), g["dense"], g["bm25"]))
    return hits


def _only_space_between(g: dict, ch: Chunk, touch: int, max_chars: int, doc_texts: Mapping[str, str]) -> bool:
    """Whether chunk `ch` may join group `g` as touching it: at most `touch` characters apart, only whitespace
    between, the joined span within `max_chars` (0: any)."""
    if g["source"] != ch.source:
        return False
    if 0 < ch.start - g["end"] <= touch:
        between = (g["end"], ch.start)
    elif 0 < g["start"] - ch.end <= touch:
        between = (ch.end, g["start"])
    else:
        return False
    if max_chars and max(g["end"], ch.end) - min(g["start"], ch.start) > max_chars:
        return False
    return not doc_texts[ch.source][between[0]:between[1]].strip()


def _near(g: dict, ch: Chunk, gap: int, max_chars: int, groups: Sequence[dict]) -> bool:
    """Whether chunk `ch` may join group `g` across a gap (see merge_overlapping)."""
    if g["source"] != ch.source or g["first"].headings != ch.headings:
        return False
    if ch.start > g["end"] + gap or ch.end < g["start"] - gap:
        return False
    lo, hi = min(g["start"], ch.start), max(g["end"], ch.end)
    if max_chars and hi - lo > max_chars:
        return False
    return not any(o is not g and o["source"] == ch.source and o["start"] < hi and o["end"] > lo for o in groups)


def drop_near_duplicates(candidates: Sequence[Candidate], vectors: np.ndarray, threshold: float
                         ) -> list[Candidate]:
    """Candidates (best first) without those whose vector is more similar than `threshold` to a better
    candidate's from another document: the same text copied into many pages (a `-p port` option in twenty
    programs' manuals) would otherwise fill every slot. Similar chunks of one document are kept: they are
    usually one discussion, and overlapping ones merge anyway."""
    if threshold >= 1.0 or len(candidates) < 2:
        return list(candidates)
    sims = vectors @ vectors.T
    kept: list[int] = []
    for i, c in enumerate(candidates):
        if any(sims[i, j] > threshold and candidates[j].chunk.source != c.chunk.source for j in kept):
            continue
        kept.append(i)
    return [candidates[i] for i in kept]


def _joined(text: str | None, start: int, end: int, ch: Chunk) -> str | None:
    """The text of [start, end) (`text`, None if unknown) and of the chunk `ch` that overlaps or touches
    it, over their union; None when the two disagree where they overlap."""
    if text is None or len(ch.text) != ch.end - ch.start:
        return None
    lo, hi = max(start, ch.start), min(end, ch.end)
    if text[lo - start:hi - start] != ch.text[lo - ch.start:hi - ch.start]:
        return None
    head = ch.text[:start - ch.start] if ch.start < start else ""
    tail = ch.text[end - ch.start:] if ch.end > end else ""
    return head + text + tail


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)
