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
PRUNE_MIN_POSTINGS = 20_000  # MaxScore for queries with more postings than this (fewer: all are scored)
SEED_ROWS = 512  # rows scored in full first, where the rarest terms weigh most: their k-th score is the first θ


BLOCK = 128  # postings per block: each block records its row range, largest tf and shortest row (for bounds)


@dataclass(frozen=True)
class BuiltPostings:
    terms: dict[str, tuple[int, int, int]]  # term -> (start, df) into rows/tfs, and its first block
    rows: np.ndarray  # int32, grouped by term, ascending within a term
    tfs: np.ndarray  # float32
    doclen: np.ndarray  # float32, one per row
    blocks: dict[str, np.ndarray]  # first, last (int32 rows), tf (float32 max), dl (float32 min) per block


@dataclass(frozen=True)
class TermPostings:
    """One term's postings in one segment (rows ascending), and its blocks."""

    rows: np.ndarray
    tfs: np.ndarray
    first: np.ndarray  # per block: first and last row, largest tf, shortest row length
    last: np.ndarray
    tf_max: np.ndarray
    dl_min: np.ndarray


def _blocks(rows: np.ndarray, tfs: np.ndarray, doclen: np.ndarray, starts: np.ndarray, dfs: np.ndarray
            ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Block-max summaries of every term's postings; the first block of each term."""
    nblocks = (dfs + BLOCK - 1) // BLOCK
    block_start = np.concatenate([[0], np.cumsum(nblocks)[:-1]]).astype(np.int64)
    # The posting index where each block begins: term start + multiples of BLOCK.
    term_of_block = np.repeat(np.arange(len(dfs)), nblocks)
    local = np.arange(int(nblocks.sum())) - np.repeat(block_start, nblocks)
    begin = starts[term_of_block] + local * BLOCK
    end = np.minimum(begin + BLOCK, starts[term_of_block] + dfs[term_of_block])
    if not len(begin):
        empty_i, empty_f = np.zeros(0, np.int32), np.zeros(0, np.float32)
        return {"first": empty_i, "last": empty_i, "tf": empty_f, "dl": empty_f}, block_start
    blocks = {"first": rows[begin].astype(np.int32), "last": rows[end - 1].astype(np.int32),
              "tf": np.maximum.reduceat(tfs, begin).astype(np.float32),
              "dl": np.minimum.reduceat(doclen[rows], begin).astype(np.float32)}
    return blocks, block_start


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
            empty_i, empty_f = np.zeros(0, np.int32), np.zeros(0, np.float32)
            return BuiltPostings({}, empty_i, empty_f, doclen, {"first": empty_i, "last": empty_i, "tf": empty_f,
                                                                "dl": empty_f})
        keys = (np.concatenate(self._terms) << 32) | np.concatenate(self._rows)
        self._terms, self._rows = [], []
        uniq, counts = np.unique(keys, return_counts=True)  # sorted by term id, then row
        del keys
        term_ids = uniq >> 32
        rows = (uniq & 0xFFFF_FFFF).astype(np.int32)
        starts = np.searchsorted(term_ids, np.arange(len(self.vocab)), side="left")
        dfs = np.diff(np.append(starts, len(term_ids)))
        tfs = counts.astype(np.float32)
        blocks, block_start = _blocks(rows, tfs, doclen, starts, dfs)
        terms = {t: (int(starts[i]), int(dfs[i]), int(block_start[i])) for t, i in self.vocab.items()}
        return BuiltPostings(terms, rows, tfs, doclen, blocks)


def build_postings(token_lists: Iterable[Sequence[str]]) -> BuiltPostings:
    """Postings of rows 0..n-1 whose tokens are `token_lists` (one list per row)."""
    builder = PostingsBuilder()
    for tokens in token_lists:
        builder.add(tokens)
    return builder.finish()


class PostingSource(Protocol):
    """What BM25 scoring needs of one segment."""

    rows_total: int

    def postings(self, term: str) -> TermPostings: ...  # the term's postings, live or not
    def deleted_mask(self) -> np.ndarray | None: ...  # bool per row, None when nothing is deleted
    def doclen(self) -> np.ndarray: ...
    def fids(self) -> np.ndarray: ...  # chunk ids (int64) per row, for tie-breaking


def idf(df: int, n: int) -> float:
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def search(segments: Sequence[PostingSource], terms: Sequence[str], k: int, live_rows: int,
           live_length: float, order: OrderKeys | None = None, prune: bool = True,
           stats: dict[str, int] | None = None) -> list[tuple[int, int, float]]:
    """The top `k` (segment, row, score) for the query `terms` (repeats count, as in bm25s), best first;
    only rows with a positive score. `live_rows` and `live_length` are the index's live totals.

    Queries with many postings are answered by MaxScore (see _maxscore), exactly: the same rows and the
    same floats as scoring every posting, which is what happens without `prune` or when a query has few
    postings. `stats`, if given, counts the searches that pruned ("pruned")."""
    if not terms or live_rows <= 0 or k <= 0:
        return []
    mult: dict[str, int] = {}
    for t in terms:
        mult[t] = mult.get(t, 0) + 1
    lists = {t: [seg.postings(t) for seg in segments] for t in mult}
    df = {t: sum(len(p.rows) - _dead(seg, p.rows) for seg, p in zip(segments, lists[t], strict=True)) for t in mult}
    qterms = [t for t in mult if df[t]]  # the order every score is summed in
    if not qterms:
        return []
    w = {t: mult[t] * idf(df[t], live_rows) for t in qterms}
    norm = (np.float32(K1 * (1.0 - B)), np.float32(K1 * B * live_rows / live_length))
    fids = [s.fids() for s in segments]
    if prune and len(qterms) > 1 and sum(df.values()) > PRUNE_MIN_POSTINGS:
        pruned = _maxscore(segments, lists, qterms, df, w, norm, k)
        if pruned is not None:
            if stats is not None:
                stats["pruned"] = stats.get("pruned", 0) + 1
            return top_k(pruned, fids, k, order=order)
    found = []
    for si, seg in enumerate(segments):
        parts = [(lists[t][si], w[t]) for t in qterms if len(lists[t][si].rows)]
        if parts:
            found.append(_score_all(seg, si, parts, norm, k))
    return top_k(found, fids, k, order=order)


def _maxscore(segments: Sequence[PostingSource], lists: dict[str, list[TermPostings]], qterms: Sequence[str],
              df: dict[str, int], w: dict[str, float], norm: tuple[np.float32, np.float32], k: int
              ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    """MaxScore, vectorized, exact. Each term's contribution has an upper bound (its blocks' largest tf and
    shortest row in the contribution's own float32 formula, which no posting of it exceeds). First the
    SEED_ROWS rows where the rarest terms contribute most are scored in full: their k-th score is a θ that
    the k-th best reaches. The terms with the smallest bounds whose bounds add up to less than θ are
    non-essential: a row holding none of the other terms cannot reach θ. So only the essential terms'
    postings are read in full (the common terms' long lists are not), summed per row; then each
    non-essential term, the largest bound first, is looked up for the rows still able to reach θ (their
    partial sum plus the bounds of the terms not yet looked up), and θ rises to the k-th partial sum
    (a lower bound of k rows' scores) as it goes. The rows left, and the seeds at θ or above, are scored
    again in full in the query's term order, as _score_all sums, so the floats are the same. None when
    the seeds do not give k scores (then every posting is scored)."""
    cache: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    def live_contrib(t: str, si: int) -> tuple[np.ndarray, np.ndarray]:
        """The live rows of `t` in segment `si` and the term's contribution to each."""
        got = cache.get((t, si))
        if got is None:
            seg, p = segments[si], lists[t][si]
            rows, tfs = np.asarray(p.rows), np.asarray(p.tfs)
            mask = seg.deleted_mask()
            if mask is not None and len(rows):
                live = ~mask[rows]
                rows, tfs = rows[live], tfs[live]
            got = cache[(t, si)] = (rows, _contrib(seg, rows, tfs, w[t], norm))
        return got

    bound = {t: _bound(lists[t], w[t], norm) for t in qterms}
    parts = [[(lists[t][si], w[t]) for t in qterms] for si in range(len(segments))]
    by_rarity = sorted(qterms, key=lambda t: (df[t], t))
    seeds, seed_scores = [], []
    for si, seg in enumerate(segments):
        picked: list[np.ndarray] = []
        for t in by_rarity:
            rows, contrib = live_contrib(t, si)
            if len(rows) > SEED_ROWS:
                rows = rows[np.argpartition(contrib, len(rows) - SEED_ROWS)[len(rows) - SEED_ROWS:]]
            picked.append(rows)
            if sum(map(len, picked)) >= SEED_ROWS:
                break
        rows = np.unique(np.concatenate(picked))
        seeds.append(rows)
        seed_scores.append(_score_rows(seg, rows, parts[si], norm))
    scores = np.concatenate(seed_scores)
    if len(scores) < k:
        return None
    theta = _kth(scores, k) * (1.0 - 1e-6)  # a margin for float rounding of the bounds and sums
    rest: list[str] = []  # the non-essential terms
    total = 0.0
    for t in sorted(qterms, key=lambda t: (bound[t], t)):
        if total + bound[t] >= theta:
            break
        total += bound[t]
        rest.append(t)
    essential = [t for t in qterms if t not in rest]
    rest.reverse()  # the largest bound first: the rows that lack it fall below θ soonest
    found = []
    for si, seg in enumerate(segments):
        got = [g for g in (live_contrib(t, si) for t in essential) if len(g[0])]
        rows = np.zeros(0, dtype=np.int32)
        if got:
            rows = np.concatenate([g[0] for g in got])
            contrib = np.concatenate([g[1] for g in got])
            if len(got) > 1:  # per row, the sum of its essential terms' contributions
                by_row = np.argsort(rows, kind="stable")  # a merge of the terms' sorted runs
                rows, contrib = rows[by_row], contrib[by_row]
                first = np.empty(len(rows), dtype=bool)
                first[0] = True
                np.not_equal(rows[1:], rows[:-1], out=first[1:])
                at = np.flatnonzero(first)
                rows, partial = rows[at], np.add.reduceat(contrib.astype(np.float64), at)
            else:
                partial = contrib.astype(np.float64)
            left = total
            keep = partial + left >= theta
            rows, partial = rows[keep], partial[keep]
            for t in rest:
                if len(partial) > k:
                    theta = max(theta, _kth(partial, k) * (1.0 - 1e-6))
                left -= bound[t]
                p = lists[t][si]
                if len(p.rows) and len(rows):
                    prow = np.asarray(p.rows)
                    pos = np.minimum(np.searchsorted(prow, rows), len(prow) - 1)
                    hit = prow[pos] == rows
                    partial[hit] += _contrib(seg, rows[hit], np.asarray(p.tfs)[pos[hit]], w[t], norm)
                keep = partial + left >= theta
                rows, partial = rows[keep], partial[keep]
        cand = np.union1d(seeds[si][seed_scores[si] >= theta], rows)
        if len(cand):
            found.append((np.full(len(cand), si, dtype=np.int32), cand, _score_rows(seg, cand, parts[si], norm)))
    return found


def _bound(per_segment: Sequence[TermPostings], weight: float, norm: tuple[np.float32, np.float32]) -> float:
    """The largest contribution a term's posting can make, from its blocks' largest tf and shortest row."""
    out = 0.0
    for p in per_segment:
        if len(p.tf_max):
            tf = np.asarray(p.tf_max)
            out = max(out, float((np.float32(weight) * tf / (norm[0] + norm[1] * np.asarray(p.dl_min) + tf)).max()))
    return out


def _dead(seg: PostingSource, rows: np.ndarray) -> int:
    """Deleted rows among `rows` (sorted)."""
    mask = seg.deleted_mask()
    return 0 if mask is None or not len(rows) else int(np.count_nonzero(mask[rows]))


def _live(seg: PostingSource, rows: np.ndarray) -> np.ndarray:
    mask = seg.deleted_mask()
    return rows if mask is None else rows[~mask[rows]]


def _contrib(seg: PostingSource, rows: np.ndarray, tfs: np.ndarray, weight: float,
             norm: tuple[np.float32, np.float32]) -> np.ndarray:
    return np.float32(weight) * tfs / (norm[0] + norm[1] * seg.doclen()[rows] + tfs)


def _score_rows(seg: PostingSource, rows: np.ndarray, parts: Sequence[tuple[TermPostings, float]],
                norm: tuple[np.float32, np.float32]) -> np.ndarray:
    """Full scores of the sorted `rows`, looking each term's tf up in its sorted postings."""
    acc = np.zeros(len(rows), dtype=np.float64)
    for p, weight in parts:
        prow, ptf = p.rows, p.tfs
        if not len(prow):
            continue
        pos = np.minimum(np.searchsorted(prow, rows), len(prow) - 1)
        hit = np.asarray(prow)[pos] == rows
        acc[hit] += _contrib(seg, rows[hit], np.asarray(ptf)[pos[hit]], weight, norm)
    return acc


def _score_all(seg: PostingSource, si: int, parts: Sequence[tuple[TermPostings, float]],
               norm: tuple[np.float32, np.float32], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every live posting of the terms scored; the segment's top k (with ties). Summed term by term in
    input order, as _score_rows does, so the two give the same floats."""
    mask = seg.deleted_mask()
    rows_l, contrib_l = [], []
    for p, weight in parts:
        rows, tfs = p.rows, p.tfs
        if mask is not None:
            live = ~mask[rows]
            rows, tfs = rows[live], tfs[live]
        rows_l.append(rows)
        contrib_l.append(_contrib(seg, rows, tfs, weight, norm))
    acc_rows, contrib = np.concatenate(rows_l), np.concatenate(contrib_l)
    if len(acc_rows) * 8 > seg.rows_total:  # dense accumulation: O(postings + rows), no sort
        dense = np.bincount(acc_rows, weights=contrib, minlength=seg.rows_total)
        # The k-th score of any k rows is a lower bound of the k-th best: take the rows of the heaviest term
        # that has k of them, keep what reaches it (one comparison pass), and select among those alone.
        heavy = [r for r, (p, weight) in sorted(zip(rows_l, parts, strict=True), key=lambda x: -x[1][1])
                 if len(r) >= k]
        low = _kth(dense[heavy[0]], k) if heavy and len(heavy[0]) > k else np.nextafter(0.0, 1.0)
        uniq = np.flatnonzero(dense >= low)
        if len(uniq) > k:
            uniq = uniq[dense[uniq] >= _kth(dense[uniq], k)]
        scores = dense[uniq]
    else:
        uniq, inverse = np.unique(acc_rows, return_inverse=True)
        scores = np.bincount(inverse, weights=contrib, minlength=len(uniq))
        if len(uniq) > k:  # this segment's top k and everything tied with its k-th: the rest cannot place
            keep = scores >= _kth(scores, k)
            uniq, scores = uniq[keep], scores[keep]
    return np.full(len(uniq), si, dtype=np.int32), uniq, scores


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
