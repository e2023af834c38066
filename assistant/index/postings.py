"""BM25 over segments: postings built once per segment at index time, scored at query time with the
statistics of the whole live index, so a score never depends on how the index was cut into segments.

A segment stores, per term, the sorted rows that hold it and how often (`rows`, `tfs`), and each row's
length (`doclen`). At query time the document frequency of a term is the number of its live postings in
all segments, N the live rows, avgdl their mean length: Lucene's BM25 (the variant bm25s calls "lucene"),
computed on the few postings lists a query touches. Ties are broken by document and position (then chunk
id), never by segment: that is what makes an incrementally built index rank exactly like a clean rebuild.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

K1 = 1.5
B = 0.75


@dataclass(frozen=True)
class BuiltPostings:
    terms: dict[str, tuple[int, int]]  # term -> (start, df) into rows/tfs
    rows: np.ndarray  # int32, grouped by term, ascending within a term
    tfs: np.ndarray  # float32
    doclen: np.ndarray  # float32, one per row


class PostingsBuilder:
    """Collects the tokens of rows 0, 1, ... as term ids (no string per token is kept), then builds."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self._terms: list[np.ndarray] = []
        self._rows: list[np.ndarray] = []
        self._lengths: list[int] = []

    def add(self, tokens: Sequence[str]) -> None:
        row = len(self._lengths)
        self._lengths.append(len(tokens) or 1)  # an empty text counts as one placeholder token, as in bm25s
        if tokens:
            vocab = self.vocab
            ids = np.fromiter((vocab.setdefault(t, len(vocab)) for t in tokens), dtype=np.int64, count=len(tokens))
            self._terms.append(ids)
            self._rows.append(np.full(len(ids), row, dtype=np.int64))

    def finish(self) -> BuiltPostings:
        doclen = np.asarray(self._lengths, dtype=np.float32)
        if not self._terms:
            return BuiltPostings({}, np.zeros(0, np.int32), np.zeros(0, np.float32), doclen)
        keys = (np.concatenate(self._terms) << 32) | np.concatenate(self._rows)
        self._terms, self._rows = [], []
        uniq, counts = np.unique(keys, return_counts=True)  # sorted by term id, then row
        del keys
        term_ids = uniq >> 32
        rows = (uniq & 0xFFFF_FFFF).astype(np.int32)
        starts = np.searchsorted(term_ids, np.arange(len(self.vocab)), side="left")
        dfs = np.diff(np.append(starts, len(term_ids)))
        terms = {t: (int(starts[i]), int(dfs[i])) for t, i in self.vocab.items()}
        return BuiltPostings(terms, rows, counts.astype(np.float32), doclen)


def build_postings(token_lists: Iterable[Sequence[str]]) -> BuiltPostings:
    """Postings of rows 0..n-1 whose tokens are `token_lists` (one list per row)."""
    builder = PostingsBuilder()
    for tokens in token_lists:
        builder.add(tokens)
    return builder.finish()


class PostingSource(Protocol):
    """What BM25 scoring needs of one segment."""

    rows_total: int

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]: ...  # (rows, tfs) of the term, live or not
    def deleted_mask(self) -> np.ndarray | None: ...  # bool per row, None when nothing is deleted
    def doclen(self) -> np.ndarray: ...
    def fids(self) -> np.ndarray: ...  # chunk ids (int64) per row, for tie-breaking


def idf(df: int, n: int) -> float:
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def search(segments: Sequence[PostingSource], terms: Sequence[str], k: int, live_rows: int,
           live_length: float, order: OrderKeys | None = None) -> list[tuple[int, int, float]]:
    """The top `k` (segment, row, score) for the query `terms` (repeats count, as in bm25s), best first;
    only rows with a positive score. `live_rows` and `live_length` are the index's live totals."""
    if not terms or live_rows <= 0 or k <= 0:
        return []
    avgdl = live_length / live_rows
    # Pass 1: the live postings of each term in each segment, and the global document frequencies.
    lists: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in segments]
    dfs: list[int] = []
    for t in terms:
        df = 0
        for si, seg in enumerate(segments):
            rows, tfs = seg.postings(t)
            if len(rows):
                mask = seg.deleted_mask()
                if mask is not None:
                    live = ~mask[rows]
                    rows, tfs = rows[live], tfs[live]
                df += len(rows)
            lists[si].append((rows, tfs))
        dfs.append(df)
    if not any(dfs):
        return []
    weights = [idf(df, live_rows) if df else 0.0 for df in dfs]
    # Pass 2: scores per segment, summed term by term (the same order in every layout), then the top k.
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (segment, rows, scores) per segment
    for si, seg in enumerate(segments):
        parts = [(rows, tfs, w) for (rows, tfs), w in zip(lists[si], weights, strict=True) if len(rows) and w]
        if not parts:
            continue
        dl = seg.doclen()
        a, b = np.float32(K1 * (1.0 - B)), np.float32(K1 * B / avgdl)
        acc_rows = np.concatenate([r for r, _, _ in parts])
        contrib = np.concatenate([np.float32(w) * tfs / (a + b * dl[rows] + tfs) for rows, tfs, w in parts])
        # Summed in input order either way (term by term), so both paths give the same floats.
        if len(acc_rows) * 8 > seg.rows_total:  # dense accumulation: O(postings + rows), no sort
            dense = np.bincount(acc_rows, weights=contrib, minlength=seg.rows_total)
            uniq = np.flatnonzero(dense >= _kth(dense, k)) if seg.rows_total > k else np.flatnonzero(dense)
            scores = dense[uniq]
        else:
            uniq, inverse = np.unique(acc_rows, return_inverse=True)
            scores = np.bincount(inverse, weights=contrib, minlength=len(uniq))
            if len(uniq) > k:  # this segment's top k and everything tied with its k-th: the rest cannot place
                keep = scores >= _kth(scores, k)
                uniq, scores = uniq[keep], scores[keep]
        found.append((np.full(len(uniq), si, dtype=np.int32), uniq, scores))
    return top_k(found, [s.fids() for s in segments], k, order=order)


def _kth(scores: np.ndarray, k: int) -> float:
    """The k-th largest value of `scores` (len > k), at least the smallest positive float."""
    return max(float(np.partition(scores, len(scores) - k)[len(scores) - k]), np.nextafter(0.0, 1.0))


OrderKeys = Callable[[int, Sequence[int]], dict[int, tuple[str, int]]]  # (segment, rows) -> row: (source, start)


def top_k(found: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], fids: Sequence[np.ndarray], k: int,
          positive: bool = True, order: OrderKeys | None = None) -> list[tuple[int, int, float]]:
    """Best `k` of (segment, row, score) triples. Equal scores are ordered by document and position
    (`order` gives each tied row's (source, start)), then by chunk id: the same in every layout.
    `positive`: only scores above zero."""
    found = [f for f in found if len(f[1])]
    if not found:
        return []
    seg = np.concatenate([f[0] for f in found])
    rows = np.concatenate([f[1] for f in found])
    scores = np.concatenate([f[2] for f in found]).astype(np.float64)
    if positive:
        keep = scores > 0
        seg, rows, scores = seg[keep], rows[keep], scores[keep]
    if len(scores) > k:  # everything tied with the k-th score stays in, so the tie-break decides
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = scores >= kth
        seg, rows, scores = seg[keep], rows[keep], scores[keep]
    ids = np.empty(len(rows), dtype=np.int64)
    for si in np.unique(seg):
        sel = seg == si
        ids[sel] = fids[int(si)][rows[sel]]
    order_idx = np.lexsort((ids, -scores))
    _, counts = np.unique(scores, return_counts=True)
    if order is not None and (counts > 1).any():
        tied = np.flatnonzero(np.isin(scores, np.unique(scores)[counts > 1]))
        where: dict[int, tuple[str, int]] = {}
        for si in np.unique(seg[tied]):
            at = tied[seg[tied] == si]
            keys = order(int(si), [int(r) for r in rows[at]])
            where.update({int(i): keys[int(rows[i])] for i in at})
        order_idx = np.array(sorted(order_idx.tolist(), key=lambda i: (-scores[i], where.get(i, ("", 0)), ids[i])))
    return [(int(seg[i]), int(rows[i]), float(scores[i])) for i in order_idx[:k]]
