"""The index on disk: incremental updates, manifest checks, crash safety, bad documents."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import IndexMismatchError, IndexNotFoundError
from assistant.index import build_index, open_index
from assistant.index.build import wanted_manifest
from assistant.index.layout import current_generation
from assistant.retrieve import Retriever

ROOT = Path(__file__).resolve().parent.parent


def test_build_then_nothing_changed_embeds_nothing(settings, hash_embedder) -> None:
    first = build_index(settings, embedder=hash_embedder)
    assert len(first.added) == 2 and first.embedded == first.chunks > 0
    calls = hash_embedder.calls
    again = build_index(settings, embedder=hash_embedder)
    assert again.embedded == 0 and hash_embedder.calls == calls
    assert len(again.unchanged) == 2 and not again.wrote
    assert again.seconds < 1.0


def test_one_changed_file_reembeds_only_its_chunks(settings, hash_embedder) -> None:
    build_index(settings, embedder=hash_embedder)
    doc = settings.docs_dir / "tiktok-shop-shifts-control-to-china.txt"
    doc.write_text(doc.read_text(encoding="utf-8") + "\n\nA new closing paragraph about Brazil.\n", "utf-8")
    report = build_index(settings, embedder=hash_embedder)
    assert report.changed == ("tiktok-shop-shifts-control-to-china.txt",)
    reader = open_index(settings.index_dir)
    chunks = [c for c, _ in reader.iter_chunks()]
    own = [c for c in chunks if c.source == "tiktok-shop-shifts-control-to-china.txt"]
    assert report.embedded == len(own)
    assert len(chunks) == report.chunks == reader.manifest.dense_count
    assert any("Brazil." in c.text for c in own)


def test_deleted_file_chunks_are_removed(settings, hash_embedder) -> None:
    build_index(settings, embedder=hash_embedder)
    (settings.docs_dir / "tiktok-shop-shifts-control-to-china.txt").unlink()
    report = build_index(settings, embedder=hash_embedder)
    assert report.removed == ("tiktok-shop-shifts-control-to-china.txt",)
    reader = open_index(settings.index_dir)
    chunks = [c for c, _ in reader.iter_chunks()]
    assert {c.source for c in chunks} == {"tiktok-hires-amazon-and-meta-veterans.txt"}
    assert reader.manifest.dense_count == len(chunks)
    assert list(reader.documents) == ["tiktok-hires-amazon-and-meta-veterans.txt"]


def test_manifest_records_the_build(settings, hash_embedder) -> None:
    build_index(settings, embedder=hash_embedder)
    gen = current_generation(settings.index_dir)
    m = json.loads((gen / "manifest.json").read_text())
    for key in ("format_version", "package_version", "model", "dimension", "max_seq_length", "chunk_tokens",
                "chunk_overlap", "built_at", "documents", "segments"):
        assert key in m
    assert m["documents"] == 2 and m["segments"][0]["rows"] == m["chunks"]
    doc = open_index(settings.index_dir).document_hashes()["tiktok-hires-amazon-and-meta-veterans.txt"]
    assert len(doc["sha256"]) == 64 and doc["chunks"] > 0
    files = [*gen.iterdir(), *(settings.index_dir / "segments").rglob("*")]
    assert not any(p.suffix in (".pkl", ".pickle") for p in files)


def test_other_chunk_settings_are_refused_on_load_and_rebuild_on_build(settings, hash_embedder) -> None:
    build_index(settings, embedder=hash_embedder)
    other = settings.replace(chunk_tokens=settings.chunk_tokens + 40)
    with pytest.raises(IndexMismatchError) as e:
        open_index(other.index_dir, wanted=wanted_manifest(other, hash_embedder.model_id))
    assert "chunk_tokens" in str(e.value) and "--rebuild" in str(e.value)
    report = build_index(other, embedder=hash_embedder)
    assert report.rebuilt and "chunk_tokens" in report.reason
    assert report.embedded == report.chunks


def test_other_model_is_refused(settings, hash_embedder) -> None:
    from assistant.embed import HashEmbedder

    build_index(settings, embedder=hash_embedder)
    with pytest.raises(IndexMismatchError, match="model"):
        Retriever.open(settings, HashEmbedder(dimension=32))


def test_missing_index_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(IndexNotFoundError, match="assistant index"):
        open_index(tmp_path / "nothing")


def test_save_load_gives_the_same_results(settings, hash_embedder) -> None:
    build_index(settings, embedder=hash_embedder)
    a = Retriever.open(settings, hash_embedder).search("Who joined from Meta?", 5)
    b = Retriever.open(settings, hash_embedder).search("Who joined from Meta?", 5)
    assert [(h.source, h.start, h.end) for h in a] == [(h.source, h.start, h.end) for h in b]


def test_bad_documents_are_skipped_and_the_rest_indexed(settings, hash_embedder) -> None:
    d = settings.docs_dir
    (d / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (d / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (d / "empty.txt").write_text("")
    (d / "notes.md").write_text("# Notes\n\nTikTok Shop opened an office in Dublin.\n")
    report = build_index(settings, embedder=hash_embedder)
    reasons = {s.rel: s.reason for s in report.skipped}
    assert set(reasons) == {"broken.pdf", "picture.png", "empty.txt"}
    assert all(reasons.values())
    assert set(report.added) == {"notes.md", "tiktok-hires-amazon-and-meta-veterans.txt",
                                 "tiktok-shop-shifts-control-to-china.txt"}


def test_a_changed_document_that_no_longer_parses_keeps_its_previous_version(settings, hash_embedder) -> None:
    (settings.docs_dir / "guide.html").write_text("<html><title>Guide</title><p>Dublin office.</p></html>")
    build_index(settings, embedder=hash_embedder)
    (settings.docs_dir / "guide.html").write_bytes(b"\x00\x01\x02 binary garbage \x00")
    report = build_index(settings, embedder=hash_embedder)
    assert "guide.html" in report.unchanged
    reader = open_index(settings.index_dir)
    assert "guide.html" in reader.documents


_SLOW_BUILD = """
import sys, time
from assistant.embed import HashEmbedder
from assistant.index import build_index
from assistant.settings import Settings

class Slow(HashEmbedder):
    def embed(self, texts, **kw):
        time.sleep(60)
        return super().embed(texts, **kw)

s = Settings.load(env={}, docs_dir=sys.argv[1], index_dir=sys.argv[2])
build_index(s, embedder=Slow())
"""


def test_killing_a_build_midway_leaves_the_previous_index_usable(settings, hash_embedder) -> None:
    build_index(settings, embedder=hash_embedder)
    before = Retriever.open(settings, hash_embedder).search("Meta veteran", 3)
    (settings.docs_dir / "new.txt").write_text("A brand new document about Dublin offices.\n")
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_BUILD, str(settings.docs_dir),
                             str(settings.index_dir)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        segments = settings.index_dir / "segments"
        first = {p.name for p in segments.iterdir()}
        while not {p.name for p in segments.iterdir()} - first:  # its new segment is being written
            assert proc.poll() is None and time.monotonic() < deadline, "build never started"
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    after = Retriever.open(settings, hash_embedder).search("Meta veteran", 3)
    assert [(h.source, h.start) for h in after] == [(h.source, h.start) for h in before]
    report = build_index(settings, embedder=hash_embedder)  # the next build cleans up and succeeds
    assert report.added == ("new.txt",)
    assert not any(p.name.startswith(".tmp-gen-") for p in settings.index_dir.iterdir())
    assert len(list(segments.iterdir())) == 2  # the killed build's segment is gone


def test_vectors_match_brute_force_cosine(settings, hash_embedder) -> None:
    """Dense search against a numpy reference over the same vectors."""
    from assistant.chunk import embedding_text

    build_index(settings, embedder=hash_embedder)
    r = Retriever.open(settings, hash_embedder)
    chunks = [c for c, _ in r.reader.iter_chunks()]
    mat = hash_embedder.embed([embedding_text(r.reader.documents[c.source], c) for c in chunks])
    for q in ("Amazon veterans in Bellevue", "privacy and user data", "livestream shopping Douyin"):
        qv = hash_embedder.embed([q])
        ref = np.argsort(-(mat @ qv[0]), kind="stable")[:5]
        found = r.reader.dense(qv, 5)[0]
        got_ids = [c.id for c in r.reader.chunks([key for key, _ in found]).values()]
        scores = np.array([sc for _, sc in found])
        assert np.allclose(scores, (mat @ qv[0])[ref], atol=1e-5)
        assert set(got_ids) == {chunks[i].id for i in ref} or np.allclose(sorted(scores), sorted((mat @ qv[0])[ref]))
