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
PRUNE_MIN_POSTINGS = 100_000  # block-max pruning is tried for queries with more postings than this
PRUNE_SHARE = 16  # ... and used when it leaves less than 1/PRUNE_SHARE of the other terms' postings to score


BLOCK = 128  # postings per block: each block records its row range, largest tf and shortest row (block-max)


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

    Block-max pruning, exact: the rows of the rarest terms (enough of them to hold k rows) are scored in
    full, which gives a k-th score θ. A row holding none of those terms can only score what the blocks of
    the other terms that cover it allow (each block knows its row range, largest tf and shortest row); the
    rows where those bounds add up to θ or more are found per block range, and only the postings of the
    blocks overlapping them are scored. Every other row scores below θ and cannot place, so the common
    terms' long lists are mostly never read. Without `prune`, or when pruning would not pay, every
    posting is scored. `stats`, if given, counts the searches that pruned ("pruned")."""
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
    by_rarity = sorted(qterms, key=lambda t: (df[t], t))
    j = 1
    while j < len(by_rarity) and sum(df[t] for t in by_rarity[:j]) < k:
        j += 1
    essential, rest = by_rarity[:j], by_rarity[j:]
    if prune and rest and sum(df.values()) > PRUNE_MIN_POSTINGS and sum(df[t] for t in essential) * 4 < live_rows:
        cand = [_live(seg, np.unique(np.concatenate([lists[t][si].rows for t in essential])))
                for si, seg in enumerate(segments)]
        scored = [_score_rows(seg, cand[si], [(lists[t][si], w[t]) for t in qterms], norm)
                  for si, seg in enumerate(segments)]
        all_scores = np.concatenate(scored) if scored else np.zeros(0)
        if len(all_scores) >= k:
            theta = _kth(all_scores, k) * (1.0 - 1e-6)  # a margin for float rounding of the bounds
            extras = [_dangerous_rows(seg, [(lists[t][si], w[t]) for t in rest], theta, norm, cand[si])
                      for si, seg in enumerate(segments)]
            if all(e is not None for e in extras):
                found = []
                for si, seg in enumerate(segments):
                    extra = extras[si]
                    rows = cand[si] if not len(extra) else np.union1d(cand[si], extra)
                    sc = scored[si] if not len(extra) else _score_rows(
                        seg, rows, [(lists[t][si], w[t]) for t in qterms], norm)
                    if len(rows):
                        found.append((np.full(len(rows), si, dtype=np.int32), rows, sc))
                if stats is not None:
                    stats["pruned"] = stats.get("pruned", 0) + 1
                return top_k(found, fids, k, order=order)
    found = []
    for si, seg in enumerate(segments):
        parts = [(lists[t][si], w[t]) for t in qterms if len(lists[t][si].rows)]
        if parts:
            found.append(_score_all(seg, si, parts, norm, k))
    return top_k(found, fids, k, order=order)


def _dangerous_rows(seg: PostingSource, parts: Sequence[tuple[TermPostings, float]], theta: float,
                    norm: tuple[np.float32, np.float32], known: np.ndarray) -> np.ndarray | None:
    """Live rows not in `known` that the blocks of `parts` allow to reach `theta`: the postings of every
    block whose row range overlaps a stretch of rows where the blocks' bounds add up to theta or more.
    None when that is more than 1/PRUNE_SHARE of their postings: scoring them all is then cheaper."""
    firsts, lasts, bounds = [], [], []
    for p, weight in parts:
        if len(p.first):
            firsts.append(np.asarray(p.first, dtype=np.int64))
            lasts.append(np.asarray(p.last, dtype=np.int64))
            tf, dl = np.asarray(p.tf_max), np.asarray(p.dl_min)
            bounds.append(weight * tf / (norm[0] + norm[1] * dl + tf))
    if not firsts:
        return np.zeros(0, dtype=np.int32)
    first, last, ub = np.concatenate(firsts), np.concatenate(lasts), np.concatenate(bounds).astype(np.float64)
    # The sum of bounds as a step function of the row: +ub where a block's range starts, -ub after it ends.
    pos = np.concatenate([first, last + 1])
    delta = np.concatenate([ub, -ub])
    order = np.argsort(pos, kind="stable")
    pos, level = pos[order], np.cumsum(delta[order])
    hot = level >= theta  # the stretch [pos[i], pos[i + 1]) is dangerous
    if not hot.any():
        return np.zeros(0, dtype=np.int32)
    starts = pos[:-1][hot[:-1]]
    ends = pos[1:][hot[:-1]]  # exclusive
    selected = []
    for p, _ in parts:
        if not len(p.first):
            continue
        f, la = np.asarray(p.first, dtype=np.int64), np.asarray(p.last, dtype=np.int64)
        i = np.searchsorted(ends, f, side="right")  # the first dangerous stretch ending after the block begins
        ok = i < len(starts)
        ok[ok] = starts[i[ok]] <= la[ok]
        selected.append((p, np.flatnonzero(ok)))
    if sum(len(sel) for _, sel in selected) * BLOCK * PRUNE_SHARE > sum(len(p.rows) for p, _ in parts):
        return None
    out = []
    for p, sel in selected:
        if len(sel):
            idx = (sel[:, None] * BLOCK + np.arange(BLOCK)[None, :]).ravel()
            out.append(np.asarray(p.rows)[idx[idx < len(p.rows)]])
    if not out:
        return np.zeros(0, dtype=np.int32)
    rows = _live(seg, np.unique(np.concatenate(out)))
    return np.setdiff1d(rows, known, assume_unique=True)


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
