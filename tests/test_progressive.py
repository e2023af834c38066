"""Progressive indexing and the embedding cache, with the fake embedder: an index is searchable before its
vectors exist, vectors fill in behind it, a killed build resumes, identical texts are embedded once, and a
settings change re-embeds only what changed."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from assistant.app import Assistant
from assistant.embed import HashEmbedder
from assistant.errors import IndexMismatchError
from assistant.index import build_index, open_index
from assistant.index.build import fill_vectors
from assistant.retrieve import Retriever
from assistant.settings import Settings

TOPICS = ["bakery bread ovens", "harbour ships fishing", "mountain snow skiing", "library books reading",
          "garden roses soil", "railway trains stations", "observatory stars telescope", "orchestra violins"]


def _corpus(root: Path, n: int = 8) -> Path:
    root.mkdir()
    for i in range(n):
        words = TOPICS[i % len(TOPICS)]
        body = "\n\n".join(f"Paragraph {j} of document {i} is about {words} and detail number {j * 7 + i}."
                           for j in range(30))
        (root / f"doc{i}.md").write_text(f"# Document {i}: {words}\n\n{body}\n", encoding="utf-8")
    return root


class Interrupting(HashEmbedder):
    """Raises KeyboardInterrupt (as Ctrl-C or a kill would end the build) once `after` calls are made."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def embed(self, texts, *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if self.calls >= self.after:
            raise KeyboardInterrupt
        return super().embed(texts, batch_size=batch_size, progress=progress)


class OtherBackend(HashEmbedder):
    backend = "other"


@pytest.fixture
def progressive(tmp_path: Path) -> Settings:
    return Settings.load(env={}, docs_dir=_corpus(tmp_path / "docs"), index_dir=tmp_path / "index",
                         progressive_min_chunks=0, chunk_tokens=32, chunk_overlap=4)


def test_an_index_is_searchable_lexically_before_its_vectors_exist(progressive: Settings) -> None:
    emb = HashEmbedder()
    report = build_index(progressive, embedder=emb, wait=False)
    assert report.pending == report.chunks > 0 and report.embedded == 0 and emb.embedded == 0
    a = Assistant.open(progressive, embedder=emb, build=False, background=False)
    assert a.dense_status() == (0, report.chunks)
    hits = a.search("telescope stars observatory")
    assert hits and hits[0].source == "doc6.md" and hits[0].dense_score is None
    answer = a.ask("What is document 6 about?")
    assert any("lexical search alone" in n for n in answer.notices)

    filled = fill_vectors(progressive, emb)
    assert filled.pending == 0 and filled.embedded > 0
    full = Retriever.open(progressive, emb)
    assert full.dense_status() == (report.chunks, report.chunks)
    assert full.search("telescope stars observatory")[0].dense_score is not None


def test_filled_in_vectors_rank_as_a_clean_build_does(tmp_path: Path, progressive: Settings) -> None:
    build_index(progressive, embedder=HashEmbedder(), wait=True)
    clean = progressive.replace(index_dir=tmp_path / "clean", progressive_min_chunks=100_000)
    build_index(clean, embedder=HashEmbedder())
    for q in ("telescope stars", "fishing harbour ships detail number 12", "violins"):
        got = [(h.source, h.start, h.end) for h in Retriever.open(progressive, HashEmbedder()).search(q)]
        want = [(h.source, h.start, h.end) for h in Retriever.open(clean, HashEmbedder()).search(q)]
        assert got == want


@pytest.mark.parametrize("threshold", [0, 100_000])  # vectors filled in behind, and embedded before writing
def test_a_killed_build_resumes_and_embeds_only_the_rest(tmp_path: Path, threshold: int) -> None:
    s = Settings.load(env={}, docs_dir=_corpus(tmp_path / "docs"), index_dir=tmp_path / "index",
                      progressive_min_chunks=threshold, chunk_tokens=32, chunk_overlap=4)
    from assistant.index import fill

    fill.EMBED_SLICE, old_slice = 16, fill.EMBED_SLICE
    try:
        killer = Interrupting(after=3)
        with pytest.raises(KeyboardInterrupt):
            build_index(s, embedder=killer)
        done = killer.embedded
        assert done == 48
        counter = HashEmbedder()
        report = build_index(s, embedder=counter)
    finally:
        fill.EMBED_SLICE = old_slice
    assert report.pending == 0
    reference = HashEmbedder()
    build_index(s.replace(index_dir=tmp_path / "ref"), embedder=reference)
    assert counter.embedded == reference.embedded - done  # nothing embedded twice
    assert open_index(s.index_dir).manifest.dense_count == report.chunks


def test_identical_texts_are_embedded_once(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    page = "# Shared page\n\n" + "\n\n".join(f"Boilerplate paragraph {j} about licences." for j in range(12))
    for i in range(5):
        (docs / f"copy{i}.md").write_text(page, encoding="utf-8")
    # Chunk vectors only: sentence vectors (sentvec.py) are counted in test_sentvec.py.
    s = Settings.load(env={}, docs_dir=docs, index_dir=tmp_path / "index", chunk_tokens=32, chunk_overlap=4,
                      sentence_vectors=False)
    emb = HashEmbedder()
    report = build_index(s, embedder=emb)
    assert report.chunks == 5 * emb.embedded and emb.embedded > 1


def test_a_settings_change_re_embeds_only_the_texts_that_changed(tmp_path: Path) -> None:
    docs = _corpus(tmp_path / "docs", 2)
    (docs / "short.md").write_text("# Short\n\nOne short page.\n", encoding="utf-8")
    s = Settings.load(env={}, docs_dir=docs, index_dir=tmp_path / "index", chunk_tokens=32, chunk_overlap=4,
                      sentence_vectors=False)
    build_index(s, embedder=HashEmbedder())
    again = HashEmbedder()
    report = build_index(s.replace(chunk_tokens=48), embedder=again)
    assert report.rebuilt and again.embedded < report.chunks  # the short page's chunk was not re-embedded
    fresh = HashEmbedder()
    build_index(s.replace(chunk_tokens=48, index_dir=tmp_path / "fresh"), embedder=fresh)
    assert again.embedded == fresh.embedded - 1


def test_cancel_stops_at_a_slice_boundary_and_keeps_what_was_embedded(progressive: Settings) -> None:
    from assistant.index import fill

    progressive = progressive.replace(sentence_vectors=False)  # chunk vectors are what is counted
    cancel = threading.Event()
    fill.EMBED_SLICE, old_slice = 8, fill.EMBED_SLICE
    try:
        def progress(stage: str, done: int, total: int, item: str = "") -> None:
            if stage == "embedding" and done >= 16:
                cancel.set()

        report = build_index(progressive, embedder=HashEmbedder(), progress=progress, cancel=cancel)
    finally:
        fill.EMBED_SLICE = old_slice
    manifest = open_index(progressive.index_dir).manifest
    assert report.pending > 0 and manifest.dense_count == 24 == report.chunks - report.pending
    rest = HashEmbedder()
    assert build_index(progressive, embedder=rest).pending == 0
    assert rest.embedded == report.chunks - 24


def test_the_assistant_fills_in_behind_and_serves_each_step(progressive: Settings) -> None:
    a = Assistant.open(progressive, embedder=HashEmbedder())
    assert a.last_build is not None and a.last_build.pending > 0
    a._filler.join(timeout=60)
    assert not a.indexing and a.fill_error == ""
    dense, total = a.dense_status()
    assert dense == total > 0 and a.ask("What is document 6 about?").notices == ()


def test_vectors_of_another_backend_are_refused(progressive: Settings) -> None:
    build_index(progressive, embedder=HashEmbedder())
    with pytest.raises(IndexMismatchError, match="backend: index has 'torch', settings say 'other'"):
        Retriever.open(progressive, OtherBackend())
    report = build_index(progressive, embedder=OtherBackend())
    assert report.rebuilt and "backend" in report.reason


def test_the_chat_and_healthz_say_how_far_the_vectors_are(progressive: Settings) -> None:
    import httpx

    from assistant.ui.app import _Handlers, launch

    build_index(progressive, embedder=HashEmbedder(), wait=False)
    a = Assistant.open(progressive, embedder=HashEmbedder(), background=False)
    dense, total = a.dense_status()
    h = _Handlers(a)
    assert h.index_status() == (f"Index: 8 documents, {total:,} passages; dense vectors: 0 of {total:,} (paused; "
                                "until then answers also use lexical search alone)")
    demo = launch(a, host="127.0.0.1", port=_free_port(), block=False, quiet=True)
    try:
        health = httpx.get(f"{demo.local_url.rstrip('/')}/healthz", timeout=30).json()
        assert (health["status"], health["chunks"], health["dense_vectors"], health["documents"]) == \
            ("ok", total, 0, 8)
        a.fill_in_background()
        a._filler.join(timeout=60)
        health = httpx.get(f"{demo.local_url.rstrip('/')}/healthz", timeout=30).json()
        assert health["dense_vectors"] == total and not health["indexing"]
    finally:
        demo.close()
    assert h.index_status() == f"Index: 8 documents, {total:,} passages"


def test_stop_indexing_stops_the_background_fill(progressive: Settings) -> None:
    from assistant.index import fill

    class Slow(HashEmbedder):
        def embed(self, texts, *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
            threading.Event().wait(0.05)
            return super().embed(texts, batch_size=batch_size, progress=progress)

    fill.EMBED_SLICE, old_slice = 4, fill.EMBED_SLICE
    try:
        a = Assistant.open(progressive, embedder=Slow())
        a.cancel_indexing()
        a._filler.join(timeout=60)
    finally:
        fill.EMBED_SLICE = old_slice
    dense, total = a.dense_status()
    assert dense < total and not a.indexing


def test_console_progress_shows_rate_and_time_left() -> None:
    import io

    from assistant.progress import ConsoleProgress

    p = ConsoleProgress(stream=io.StringIO())
    assert p.line(0, 1000, now=100.0) == "embedding " + " " * 25 + " 0/1,000"
    assert p.line(250, 1000, now=110.0) == "embedding ######" + " " * 19 + " 250/1,000  25.0 chunks/s  0:30 left"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_cache_is_pruned_with_the_index(tmp_path: Path) -> None:
    from assistant.index.embcache import EmbeddingCache

    s = Settings.load(env={}, docs_dir=_corpus(tmp_path / "docs"), index_dir=tmp_path / "index",
                      chunk_tokens=32, chunk_overlap=4)
    emb = HashEmbedder()
    full = build_index(s, embedder=emb)

    def cached() -> int:
        cache = EmbeddingCache(s.index_dir, f"{emb.model_id}|torch|{emb.dimension}", emb.dimension)
        try:
            return len(cache)
        finally:
            cache.close()

    assert cached() == full.chunks
    for i in range(2, 8):
        (s.docs_dir / f"doc{i}.md").unlink()
    left = build_index(s, embedder=emb)
    assert left.removed and cached() == left.chunks < full.chunks


def test_open_with_wait_returns_a_complete_index(progressive: Settings) -> None:
    a = Assistant.open(progressive, embedder=HashEmbedder(), wait=True)
    dense, total = a.dense_status()
    assert dense == total > 0 and not a.indexing


def test_the_status_line_shows_rate_and_time_left_while_filling(progressive: Settings) -> None:
    from assistant.ui.app import _Handlers

    a = Assistant.open(progressive, embedder=HashEmbedder(), background=False)
    a._track("embedding", 0, 400)
    a._fill_started = (a._fill_started[0] - 10.0, 0)  # ten seconds ago
    a._track("embedding", 100, 400)
    done, todo, rate = a.fill_progress
    assert (done, todo) == (100, 400) and 9.0 < rate < 10.5
    a.fill_in_background = lambda: None  # keep it "filling" for the line below
    a._filler = threading.Thread(target=threading.Event().wait, args=(5,), daemon=True)
    a._filler.start()
    assert "chunks/s, about 0:" in _Handlers(a).index_status()


def test_a_cache_at_its_bound_is_pruned_once_not_on_every_update(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.index.embcache import EmbeddingCache

    docs = _corpus(tmp_path / "docs")
    emb = HashEmbedder()
    probe = Settings.load(env={}, docs_dir=docs, index_dir=tmp_path / "probe", chunk_tokens=32, chunk_overlap=4)
    chunks = build_index(probe, embedder=emb).chunks
    per_row_mb = (emb.dimension * 4 + 48) / 1024 / 1024
    s = probe.replace(index_dir=tmp_path / "index", embed_cache_mb=per_row_mb * chunks * 0.7)
    prunes: list[int] = []
    real = EmbeddingCache.prune
    monkeypatch.setattr(EmbeddingCache, "prune", lambda self, keep, mb: prunes.append(1) or real(self, keep, mb))
    build_index(s, embedder=emb)
    assert len(prunes) == 1  # over its bound after the first build
    (docs / "extra.md").write_text("# Extra\n\nOne more short note about ovens.\n", encoding="utf-8")
    build_index(s, embedder=emb)
    assert len(prunes) == 1  # the next small update finds room under the bound


def test_the_cache_keeps_its_row_count_without_counting(tmp_path: Path) -> None:
    from assistant.index.embcache import EmbeddingCache

    cache = EmbeddingCache(tmp_path, "ns", 4)
    keys = cache.keys([f"text {i}" for i in range(10)])
    cache.put(keys[:6], np.ones((6, 4), np.float32))
    cache.put(keys[4:], np.ones((6, 4), np.float32))  # two of them already there
    assert len(cache) == 10
    cache.prune(keys[:3], max_mb=1.0)
    assert len(cache) == 3
    cache.close()
    again = EmbeddingCache(tmp_path, "ns", 4)
    assert len(again) == 3 and set(again.get(keys)) == set(keys[:3])
    again.close()


def test_the_cache_stores_a_vector_in_about_its_own_size(tmp_path: Path) -> None:
    from assistant.index.embcache import EmbeddingCache

    cache = EmbeddingCache(tmp_path, "ns", 384)
    for i in range(0, 4000, 500):
        cache.put(cache.keys([f"t{j}" for j in range(i, i + 500)]), np.ones((500, 384), np.float32))
    cache.close()
    size = sum(f.stat().st_size for f in tmp_path.iterdir())
    assert size / 4000 < 2.2 * 1024  # 1,536 bytes of floats: no overflow page per row (4.7 KB at 4 KiB pages)
