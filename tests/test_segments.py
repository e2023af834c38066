"""The segmented index: incremental builds rank exactly like a clean rebuild, merges keep results, BM25
matches bm25s, opening reads no chunk, ANN answers like exact search, and kill -9 during a segment write
or a merge leaves the previous index loadable."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.embed import HashEmbedder
from assistant.index import build_index, open_index
from assistant.index import segment as segment_module
from assistant.index.build import optimize_index
from assistant.index.terms import tokenize
from assistant.retrieve.retriever import Retriever
from assistant.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ("Meta veteran hired", "privacy and user data", "livestream shopping in China", "Amazon Bellevue office",
           "control moves to Beijing", "sellers and merchants fees")


def _paragraphs() -> list[str]:
    out: list[str] = []
    for f in sorted((ROOT / "documents").glob("*.txt")):
        out += [p.strip() for p in f.read_text(encoding="utf-8").split("\n\n") if len(p.strip()) > 80]
    return out


def _corpus(folder: Path, names: range) -> None:
    paras = _paragraphs()
    folder.mkdir(parents=True, exist_ok=True)
    for i in names:
        # Each file: three paragraphs, so documents share words and BM25 statistics matter.
        text = "\n\n".join(paras[(i * 3 + j) % len(paras)] for j in range(3))
        (folder / f"p{i:02d}.txt").write_text(f"Part {i}\n\n{text}\n", encoding="utf-8")


def _settings(tmp_path: Path, index: str = "index", **kw: object) -> Settings:
    return Settings.load(env={}, docs_dir=tmp_path / "docs", index_dir=tmp_path / index, backend="torch", **kw)


def _rankings(s: Settings, emb: HashEmbedder) -> dict:
    r = Retriever.open(s, emb)
    out: dict = {}
    for q in QUERIES:
        for mode in ("bm25", "dense", "hybrid"):
            out[(q, mode)] = [(h.source, h.start, h.end, round(h.score, 9)) for h in r.search(q, 8, retrieval=mode)]
        raw = r.reader.bm25(tokenize(q), 20)
        ids = r.reader.chunks([key for key, _ in raw])
        out[(q, "bm25-raw")] = [(ids[key].id, round(score, 9)) for key, score in raw]
    r.reader.close()
    return out


def test_an_incrementally_built_index_ranks_exactly_like_a_clean_rebuild(tmp_path: Path) -> None:
    emb = HashEmbedder()
    s = _settings(tmp_path)
    docs = tmp_path / "docs"
    _corpus(docs, range(0, 10))
    build_index(s, embedder=emb)
    _corpus(docs, range(10, 20))
    build_index(s, embedder=emb)
    for i in range(3, 8):  # changed
        f = docs / f"p{i:02d}.txt"
        f.write_text(f.read_text(encoding="utf-8") + "\nA closing note on merchants and sellers.\n", "utf-8")
    for i in (12, 15, 18):  # removed
        (docs / f"p{i:02d}.txt").unlink()
    build_index(s, embedder=emb)
    metas = open_index(s.index_dir).manifest.segment_metas()
    assert len(metas) >= 3 and sum(m.deleted_rows for m in metas) > 0  # segments and deletions are in play

    clean = _settings(tmp_path, "clean")
    build_index(clean, embedder=emb)
    assert len(open_index(clean.index_dir).manifest.segment_metas()) == 1
    assert _rankings(s, emb) == _rankings(clean, emb)


def test_term_counts_are_the_live_chunks_holding_each_term(tmp_path: Path) -> None:
    """The answerer's vocabulary (df per term) over segments with deleted rows: a brute-force count."""
    emb = HashEmbedder()
    s = _settings(tmp_path)
    docs = tmp_path / "docs"
    _corpus(docs, range(0, 8))
    build_index(s, embedder=emb)
    _corpus(docs, range(8, 12))
    (docs / "p03.txt").unlink()
    build_index(s, embedder=emb)
    reader = open_index(s.index_dir)
    assert sum(m.deleted_rows for m in reader.manifest.segment_metas()) > 0
    chunks = [set(tokenize(c.text)) for c, _ in reader.iter_chunks()]
    terms = ["tiktok", "amazon", "livestream", "merchant", "zebra", "the"]
    df, n = reader.term_counts(terms)
    assert n == len(chunks)
    assert df == {t: sum(t in c for c in chunks) for t in terms}
    assert df["zebra"] == 0 and df["tiktok"] > 0
    reader.close()


def test_merges_keep_every_result(tmp_path: Path) -> None:
    emb = HashEmbedder()
    s = _settings(tmp_path)
    docs = tmp_path / "docs"
    _corpus(docs, range(0, 6))
    build_index(s, embedder=emb)
    _corpus(docs, range(6, 12))
    build_index(s, embedder=emb)
    (docs / "p02.txt").unlink()
    build_index(s, embedder=emb)
    before = _rankings(s, emb)
    assert len(open_index(s.index_dir).manifest.segment_metas()) == 2
    lines = optimize_index(s)
    metas = open_index(s.index_dir).manifest.segment_metas()
    assert len(metas) == 1 and metas[0].deleted_rows == 0 and any("merged 2" in line for line in lines)
    assert _rankings(s, emb) == before
    # The tiered policy merges on its own: a fourth small segment in the lowest tier makes one.
    for i in range(12, 16):
        _corpus(docs, range(i, i + 1))
        build_index(s, embedder=emb)
    assert len(open_index(s.index_dir).manifest.segment_metas()) < 4


def test_bm25_matches_bm25s_on_the_same_tokens(tmp_path: Path) -> None:
    import bm25s

    emb = HashEmbedder()
    s = _settings(tmp_path)
    _corpus(tmp_path / "docs", range(0, 25))
    build_index(s, embedder=emb)
    reader = open_index(s.index_dir)
    chunks = [c for c, _ in reader.iter_chunks()]
    model = bm25s.BM25()
    model.index([tokenize(c.text) or ["\x00"] for c in chunks], show_progress=False)
    row_of = {c.id: i for i, c in enumerate(chunks)}
    for q in QUERIES:
        terms = [t for t in tokenize(q) if t in model.vocab_dict]
        docs, scores = model.retrieve([terms], k=10, show_progress=False)
        ours = reader.bm25(tokenize(q), 10)
        got = reader.chunks([key for key, _ in ours])
        assert np.allclose([sc for _, sc in ours], np.asarray(scores)[0][: len(ours)], rtol=1e-4)
        ref = [int(d) for d, sc in zip(np.asarray(docs)[0], np.asarray(scores)[0], strict=True) if sc > 0]
        assert {row_of[got[key].id] for key, _ in ours} == set(ref) or len(ours) == 10


def test_opening_an_index_reads_no_chunk_and_no_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emb = HashEmbedder()
    s = _settings(tmp_path)
    _corpus(tmp_path / "docs", range(0, 12))
    build_index(s, embedder=emb)
    statements: list[str] = []
    real_connect = sqlite3.connect

    def traced(*args: object, **kwargs: object) -> sqlite3.Connection:
        con = real_connect(*args, **kwargs)  # type: ignore[arg-type]
        con.set_trace_callback(statements.append)
        return con

    monkeypatch.setattr(segment_module.sqlite3, "connect", traced)
    r = Retriever.open(s, emb)
    assert statements == []  # not one query: texts, documents and terms stay on disk
    hits = r.search("Meta veteran hired", 3)
    assert hits and any("FROM chunks WHERE row IN" in q for q in statements)  # the instrument does see reads
    assert not any("FROM chunks" in q and "WHERE" not in q for q in statements)  # never a scan of all chunks


@pytest.mark.parametrize("codes", ["SQ8", "PQ fast scan"])
def test_ann_forced_on_answers_like_exact_search_and_excludes_deleted_rows(tmp_path: Path, codes: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.index import vectors

    if codes != "SQ8":
        monkeypatch.setattr(vectors, "PQ_MIN_VECTORS", 1)
    emb = HashEmbedder()
    docs = tmp_path / "docs"
    _corpus(docs, range(0, 30))
    ann = _settings(tmp_path, "ann", ann_threshold=1, ann_nprobe=64)  # 64 >= nlist: every list probed
    exact = _settings(tmp_path, "exact", ann_threshold=0)
    build_index(ann, embedder=emb)
    build_index(exact, embedder=emb)
    ra, re_ = Retriever.open(ann, emb), Retriever.open(exact, emb)
    assert ra.dense_index.startswith("ann (IVF") and re_.dense_index == "exact"
    assert ("fs" in ra.dense_index) == (codes != "SQ8") and "refine=" in ra.dense_index
    assert ra.reader.manifest.chunks <= vectors.REFINE  # every row a candidate: the rescoring decides alone
    for q in QUERIES:
        a = [(h.chunk_ids[0], round(h.dense_score or 0, 6)) for h in ra.search(q, 5, retrieval="dense")]
        e = [(h.chunk_ids[0], round(h.dense_score or 0, 6)) for h in re_.search(q, 5, retrieval="dense")]
        assert a == e  # the candidates rescored exactly: the codes' rounding decides nothing
    gone = "p07.txt"
    (docs / gone).unlink()
    build_index(ann, embedder=emb)
    ra = Retriever.open(ann, emb)
    assert ra.reader.manifest.segment_metas()[0].ann and ra.reader.manifest.segment_metas()[0].deleted_rows
    for q in QUERIES:
        assert all(h.source != gone for h in ra.search(q, 10, retrieval="dense"))


_SLOW = """
import sys, time
from assistant.embed import HashEmbedder
from assistant.index import build_index, segment
from assistant.index.build import optimize_index
from assistant.settings import Settings

real_add = segment.SegmentWriter.add
def slow_add(self, *a, **kw):
    rows = real_add(self, *a, **kw)
    if self.rows and self.docs == 2:
        time.sleep(60)  # killed here, halfway through writing a segment
    return rows
segment.SegmentWriter.add = slow_add
s = Settings.load(env={}, docs_dir=sys.argv[1], index_dir=sys.argv[2], backend="torch")
if sys.argv[3] == "merge":
    optimize_index(s)
elif sys.argv[3] == "fill":
    from assistant.index import fill, layout

    class Slow(HashEmbedder):
        def embed(self, texts, **kw):
            if self.calls:
                time.sleep(60)  # killed here, after the first part was published
            return super().embed(texts, **kw)

    fill.EMBED_SLICE = 4
    with layout.writer_lock(s.index_dir):
        fill.fill_vectors_locked(s, Slow(), publish_every=0.0)
else:
    build_index(s, embedder=HashEmbedder())
"""


@pytest.mark.parametrize("step", ["segment", "merge", "fill"])
def test_kill_during_a_segment_write_a_merge_or_a_fill_leaves_the_previous_index(tmp_path: Path, step: str) -> None:
    emb = HashEmbedder()
    s = _settings(tmp_path, progressive_min_chunks=0 if step == "fill" else 512)
    docs = tmp_path / "docs"
    _corpus(docs, range(0, 8))
    build_index(s, embedder=emb)
    _corpus(docs, range(8, 12))
    build_index(s, embedder=emb, wait=step != "fill")  # "fill": the second segment waits for its vectors
    if step == "segment":
        _corpus(docs, range(12, 16))
    before = _rankings(s, emb)
    segments = s.index_dir / "segments"
    first = {p.name for p in segments.rglob("*")}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW, str(docs), str(s.index_dir), step], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not {p.name for p in segments.rglob("*")} - first:  # a new segment, or a fill's first part
            assert proc.poll() is None and time.monotonic() < deadline, f"the {step} never started"
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    if step != "fill":
        assert _rankings(s, emb) == before  # the previous generation, untouched
    else:  # the generation the fill published before it was killed: more vectors, the same documents
        assert open_index(s.index_dir).manifest.pending < open_index(s.index_dir).manifest.chunks
        assert _rankings(s, emb)[(QUERIES[0], "bm25")] == before[(QUERIES[0], "bm25")]
    if step == "fill":
        report = build_index(s, embedder=emb)  # the next run fills in the rest
        assert report.pending == 0 and open_index(s.index_dir).manifest.pending == 0
    elif step == "segment":
        report = build_index(s, embedder=emb)  # the next run cleans up and completes
        assert report.added == tuple(f"p{i:02d}.txt" for i in range(12, 16))
    else:
        optimize_index(s)
        assert len(open_index(s.index_dir).manifest.segment_metas()) == 1
        assert _rankings(s, emb) == before
    metas = open_index(s.index_dir).manifest.segment_metas()
    assert {p.name for p in segments.iterdir()} == {m.name for m in metas}  # the killed writer's segment is gone
    named = {f"{kind}-{p}.npy" for m in metas for p, _ in m.parts for kind in ("rows", "vectors")}
    assert {f.name for f in segments.rglob("*") if f.name.startswith(("rows-", "vectors-"))} == named


def test_a_long_fill_leaves_few_vector_parts_and_the_same_results(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.index import fill, layout

    emb = HashEmbedder()
    _corpus(tmp_path / "docs", range(0, 30))
    s = _settings(tmp_path, progressive_min_chunks=0)
    report = build_index(s, embedder=emb, wait=False)
    assert report.pending == report.chunks > 0
    monkeypatch.setattr(fill, "EMBED_SLICE", 4)  # many slices, each published (publish_every=0)
    published: list[int] = []
    with layout.writer_lock(s.index_dir):
        fill.fill_vectors_locked(s, emb, publish_every=0.0, on_publish=lambda: published.append(1))
    metas = open_index(s.index_dir).manifest.segment_metas()
    assert len(published) > fill.MAX_PARTS  # more publishes than parts: they were consolidated
    assert all(len(m.parts) < fill.MAX_PARTS for m in metas) and sum(m.vectors for m in metas) == report.chunks
    clean = _settings(tmp_path, "clean")
    build_index(clean, embedder=emb)
    assert _rankings(s, emb) == _rankings(clean, emb)


def test_maxscore_pruning_returns_exactly_what_scoring_every_posting_does(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.index import postings

    emb = HashEmbedder()
    docs = tmp_path / "docs"
    _corpus(docs, range(0, 20))
    s = _settings(tmp_path)
    build_index(s, embedder=emb)
    _corpus(docs, range(20, 30))
    (docs / "p04.txt").unlink()
    build_index(s, embedder=emb)  # two segments and a deletion
    monkeypatch.setattr(postings, "PRUNE_MIN_POSTINGS", 0)
    r = open_index(s.index_dir)
    stats: dict[str, int] = {}
    queries = [*QUERIES, *(" ".join(p.split()[:12]) for p in _paragraphs()[:30])]
    for q in queries:
        for k in (1, 5, 40):
            args = (r.segments, tokenize(q), k, r._live_rows, r._live_length, r._order)
            assert postings.search(*args, prune=True, stats=stats) == postings.search(*args, prune=False)
    assert stats.get("pruned", 0) > 10  # the early stop did happen, and changed nothing


def test_an_update_reads_only_the_files_whose_size_or_mtime_changed(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.load import scan

    emb = HashEmbedder()
    docs = tmp_path / "docs"
    _corpus(docs, range(0, 12))
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    s = _settings(tmp_path)
    first = build_index(s, embedder=emb)
    assert "broken.pdf" in {sk.rel for sk in first.skipped}
    hashed: list[str] = []
    real = scan.hashlib.sha256

    class Counting:
        def __init__(self) -> None:
            self._h = real()

        def update(self, data: bytes) -> None:
            self._h.update(data)

        def hexdigest(self) -> str:
            hashed.append("x")
            return self._h.hexdigest()

    import types

    monkeypatch.setattr(scan, "hashlib", types.SimpleNamespace(sha256=Counting))  # this module's only
    assert build_index(s, embedder=emb).wrote is False and hashed == []  # nothing read: not one file hashed
    f = docs / "p03.txt"
    f.write_text(f.read_text(encoding="utf-8") + "\nOne more line about sellers.\n", encoding="utf-8")
    g = docs / "p05.txt"
    os.utime(g, ns=(g.stat().st_atime_ns, g.stat().st_mtime_ns + 1000))  # touched, same bytes
    report = build_index(s, embedder=emb)
    assert len(hashed) == 2 and report.changed == ("p03.txt",) and "p05.txt" in report.unchanged
    assert "broken.pdf" in {sk.rel for sk in report.skipped}  # still skipped, and not read again


def test_the_stopwords_are_bm25s_english_ones() -> None:
    from bm25s.stopwords import STOPWORDS_EN

    from assistant.index import terms

    assert frozenset(STOPWORDS_EN) == terms._STOPWORDS_EN


class _MemorySegment:
    """A PostingSource in memory, for testing the scoring on corpora too big to index quickly."""

    def __init__(self, built, deleted: np.ndarray | None = None) -> None:  # noqa: ANN001
        from assistant.index.postings import BLOCK, TermPostings

        self.rows_total = len(built.doclen)
        self._built, self._block, self._tp = built, BLOCK, TermPostings
        self._mask = None
        if deleted is not None:
            self._mask = np.zeros(self.rows_total, dtype=bool)
            self._mask[deleted] = True

    def postings(self, term: str):  # noqa: ANN201
        s, df, b = self._built.terms[term]
        n = (df + self._block - 1) // self._block
        bl = self._built.blocks
        return self._tp(self._built.rows[s:s + df], self._built.tfs[s:s + df], bl["first"][b:b + n],
                        bl["last"][b:b + n], bl["tf"][b:b + n], bl["dl"][b:b + n])

    def deleted_mask(self) -> np.ndarray | None:
        return self._mask

    def doclen(self) -> np.ndarray:
        return self._built.doclen

    def fids(self) -> np.ndarray:
        return np.arange(self.rows_total, dtype=np.int64)


def test_maxscore_is_exact_on_a_large_skewed_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.index import postings

    monkeypatch.setattr(postings, "PRUNE_MIN_POSTINGS", 0)
    monkeypatch.setattr(postings, "SEED_ROWS", 64)  # a weak first θ: the lookups and θ's rises do the work
    rng = np.random.default_rng(7)
    vocab = 3000
    p = 1.0 / np.arange(1, vocab + 1) ** 1.1
    p /= p.sum()
    segs, live_rows, live_length = [], 0, 0.0
    for seed, n in ((1, 30_000), (2, 12_000)):
        lengths = rng.integers(5, 80, size=n)
        built = postings.build_postings([[f"w{t}" for t in rng.choice(vocab, size=m, p=p)] for m in lengths])
        deleted = np.sort(rng.choice(n, size=n // 50, replace=False)) if seed == 2 else None
        segs.append(_MemorySegment(built, deleted))
        keep = np.ones(n, bool) if deleted is None else ~np.isin(np.arange(n), deleted)
        live_rows += int(keep.sum())
        live_length += float(built.doclen[keep].astype(np.float64).sum())
    stats: dict[str, int] = {}
    queries = [[f"w{t}" for t in rng.choice(vocab, size=rng.integers(2, 6), p=p ** 0.5 / (p ** 0.5).sum())]
               for _ in range(60)]
    for q in queries:
        for k in (5, 40):
            args = (segs, q, k, live_rows, live_length)
            assert postings.search(*args, prune=True, stats=stats) == postings.search(*args, prune=False), q
    assert stats.get("pruned", 0) > 10


def test_an_update_of_named_paths_touches_only_them_and_equals_a_full_scan(tmp_path: Path) -> None:
    emb = HashEmbedder()
    docs = tmp_path / "docs"
    _corpus(docs, range(0, 12))
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    s = _settings(tmp_path)
    build_index(s, embedder=emb)
    _corpus(docs, range(12, 13))  # added
    f = docs / "p03.txt"
    f.write_text(f.read_text(encoding="utf-8") + "\nOne more line about sellers.\n", encoding="utf-8")  # changed
    (docs / "p05.txt").unlink()  # removed
    g = docs / "p07.txt"
    g.write_text("Not named, so not looked at yet.\n", encoding="utf-8")
    report = build_index(s, embedder=emb, paths=["p12.txt", "p03.txt", "p05.txt", "../escape.txt"])
    assert (report.added, report.changed, report.removed) == (("p12.txt",), ("p03.txt",), ("p05.txt",))
    assert [sk.rel for sk in report.skipped] == ["../escape.txt"]
    r = open_index(s.index_dir)
    assert "Not named" not in r.documents["p07.txt"].text  # p07 keeps its indexed version
    assert "broken.pdf" in r.manifest.skipped  # the other files' failures are still remembered
    full = build_index(s, embedder=emb)  # a full scan then sees p07 only
    assert full.changed == ("p07.txt",) and not full.added and not full.removed
    clean = _settings(tmp_path, "clean")
    build_index(clean, embedder=emb)
    assert _rankings(s, emb) == _rankings(clean, emb)


def test_a_cancelled_merge_leaves_the_index_as_it_was(tmp_path: Path) -> None:
    import threading

    from assistant.index import layout
    from assistant.index.merge import maintain

    emb = HashEmbedder()
    docs = tmp_path / "docs"
    s = _settings(tmp_path)
    _corpus(docs, range(0, 6))
    build_index(s, embedder=emb)
    _corpus(docs, range(6, 12))
    build_index(s, embedder=emb)
    before = _rankings(s, emb)
    stop = threading.Event()
    stop.set()
    with layout.writer_lock(s.index_dir):
        assert maintain(s, optimize=True, cancel=stop) == []
    assert len(open_index(s.index_dir).manifest.segment_metas()) == 2
    assert len(list((s.index_dir / "segments").iterdir())) == 2 and _rankings(s, emb) == before


def test_the_chat_merges_in_the_background_after_an_update(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.app import Assistant
    from assistant.index import merge as merge_module

    emb = HashEmbedder()
    docs = tmp_path / "docs"
    _corpus(docs, range(0, 3))
    s = _settings(tmp_path)
    a = Assistant.open(s, embedder=emb)
    calls: list[str] = []
    real = merge_module.maintain
    monkeypatch.setattr("assistant.index.build.maintain",
                        lambda *args, **kw: calls.append(threading.current_thread().name) or real(*args, **kw))
    for i in range(3, 7):  # four small segments of one tier: the policy merges them
        a.add_documents([(f"q{i}.txt", (docs / f"p{i % 3:02d}.txt").read_bytes() + f"\nMore {i}.\n".encode())])
    deadline = time.monotonic() + 30
    while a.indexing and time.monotonic() < deadline:
        time.sleep(0.05)
    assert calls and all(name == "fill-vectors" for name in calls)  # never in the request's own thread
    assert len(a.retriever.reader.manifest.segment_metas()) < 4  # merged, and the chat serves the result
