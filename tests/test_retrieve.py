"""Retrieval: RRF by hand, merging, hybrid search, thread safety."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from assistant.index import build_index
from assistant.records import Chunk
from assistant.retrieve import Candidate, Retriever, merge_overlapping, rrf
from assistant.retrieve.fusion import drop_near_duplicates


def test_rrf_matches_a_hand_computed_example() -> None:
    dense = ["a", "b", "c"]
    bm25 = ["c", "a", "d"]
    fused = dict(rrf([dense, bm25], [1.0, 0.5], k=10))
    assert fused["a"] == pytest.approx(1 / 11 + 0.5 / 12)
    assert fused["b"] == pytest.approx(1 / 12)
    assert fused["c"] == pytest.approx(1 / 13 + 0.5 / 11)
    assert fused["d"] == pytest.approx(0.5 / 13)
    assert [key for key, _ in rrf([dense, bm25], [1.0, 0.5], k=10)] == ["a", "c", "b", "d"]


def test_with_the_default_constant_the_top_of_one_ranking_beats_the_middle_of_both() -> None:
    """A passage that dense retrieval ranks first and BM25 misses (no shared words) must not sink below one
    that is 12th in one ranking and 22nd in the other; with k = 60 it would sink below every passage that
    both rankings hold."""
    from assistant.settings import Settings

    k = Settings.load(env={}).rrf_k
    dense = ["top", *[f"m{i}" for i in range(40)]]
    bm25 = [f"x{i}" for i in range(11)] + [f"m{i}" for i in range(29)]
    order = [key for key, _ in rrf([dense, bm25], k=k)]
    assert order.index("top") < order.index("m10")


def test_rrf_needs_one_weight_per_ranking() -> None:
    with pytest.raises(ValueError):
        rrf([["a"], ["b"]], [1.0])


def test_overlapping_chunks_of_one_document_are_merged() -> None:
    text = "0123456789" * 10
    a = Chunk.make("d", 0, 40, text[0:40])
    b = Chunk.make("d", 30, 70, text[30:70])
    c = Chunk.make("e", 0, 10, "x" * 10)
    d = Chunk.make("d", 80, 100, text[80:100])
    hits = merge_overlapping([Candidate(a, 0.9), Candidate(c, 0.8), Candidate(b, 0.7), Candidate(d, 0.6)],
                             {"d": text, "e": "x" * 10}, k=3)
    assert [(h.source, h.start, h.end) for h in hits] == [("d", 0, 70), ("e", 0, 10), ("d", 80, 100)]
    assert hits[0].text == text[0:70] and hits[0].chunk_ids == (a.id, b.id)
    assert [h.rank for h in hits] == [1, 2, 3]


def test_merged_hits_take_their_text_from_their_chunks_without_reading_documents() -> None:
    text = "".join(chr(0x3b1 + i % 20) for i in range(120))  # not ASCII: offsets count characters
    a = Chunk.make("d", 40, 80, text[40:80])
    b = Chunk.make("d", 10, 45, text[10:45])  # before a, overlapping it
    inner = Chunk.make("d", 50, 60, text[50:60])  # inside the merged span
    c = Chunk.make("d", 80, 110, text[80:110])  # touching it
    hits = merge_overlapping([Candidate(a, 0.9), Candidate(b, 0.8), Candidate(inner, 0.7), Candidate(c, 0.6)],
                             {}, k=3)  # an empty mapping: a document read would raise KeyError
    assert [(h.source, h.start, h.end, h.text) for h in hits] == [("d", 10, 110, text[10:110])]
    # Chunks that disagree on the text they share: the document's text decides.
    odd = Chunk.make("d", 70, 90, "z" * 20)
    hits = merge_overlapping([Candidate(a, 0.9), Candidate(odd, 0.8)], {"d": text}, k=3)
    assert hits[0].text == text[40:90]


def test_passages_of_one_section_a_short_gap_apart_join_and_free_a_slot() -> None:
    text = "".join(chr(0x61 + i % 26) for i in range(400))
    sec, other = ("Guide", "Install"), ("Guide", "Upgrade")
    a = Chunk.make("d", 0, 50, text[0:50], sec)
    b = Chunk.make("d", 80, 130, text[80:130], sec)  # 30 characters after a, same section
    far = Chunk.make("d", 300, 350, text[300:350], sec)  # too far from both
    elsewhere = Chunk.make("d", 140, 190, text[140:190], other)  # near, but another section
    e = Chunk.make("e", 0, 10, "x" * 10)
    cands = [Candidate(a, 0.9), Candidate(b, 0.8), Candidate(elsewhere, 0.7), Candidate(far, 0.6), Candidate(e, 0.5)]
    hits = merge_overlapping(cands, {"d": text, "e": "x" * 10}, k=4, gap=40, max_chars=1000)
    assert [(h.source, h.start, h.end) for h in hits] == [("d", 0, 130), ("d", 140, 190), ("d", 300, 350),
                                                           ("e", 0, 10)]
    assert hits[0].text == text[0:130]  # the gap's text included, read from the document
    assert hits[0].chunk_ids == (a.id, b.id) and hits[0].rank == 1
    # Without a gap (the old behaviour) b keeps its own slot and e does not get one.
    assert [(h.start, h.end) for h in merge_overlapping(cands, {"d": text}, k=4)] == [
        (0, 50), (80, 130), (140, 190), (300, 350)]
    # A join never makes a passage longer than max_chars.
    assert len(merge_overlapping(cands, {"d": text, "e": "x" * 10}, k=4, gap=40, max_chars=100)) == 4
    assert merge_overlapping(cands, {"d": text}, k=4, gap=40, max_chars=100)[1].start == 80


def test_passages_with_only_whitespace_between_join_across_sections() -> None:
    text = "Details: aim for 2.7.\n\nDrop support for 2.6\n-----\nWhile 2.5 works ..." + " z" * 40
    end_of_details = text.index("\n\n")
    start_of_drop = text.index("Drop")
    a = Chunk.make("d", 0, end_of_details, text[:end_of_details], ("Details",))
    b = Chunk.make("d", start_of_drop, start_of_drop + 40, text[start_of_drop:start_of_drop + 40],
                   ("Details", "Drop support for 2.6"))
    c = Chunk.make("d", start_of_drop + 42, start_of_drop + 60, text[start_of_drop + 42:start_of_drop + 60],
                   ("Other",))  # two characters after b, but not whitespace between
    cands = [Candidate(a, 0.9), Candidate(b, 0.8), Candidate(c, 0.7)]
    hits = merge_overlapping(cands, {"d": text}, k=3, gap=800, max_chars=1600, touch=64)
    assert [(h.start, h.end) for h in hits] == [(0, start_of_drop + 40), (start_of_drop + 42, start_of_drop + 60)]
    assert hits[0].text == text[:start_of_drop + 40] and hits[0].chunk_ids == (a.id, b.id)
    # Off (touch 0), or over max_chars, the sections keep their own passages.
    assert len(merge_overlapping(cands, {"d": text}, k=3, gap=800, max_chars=1600)) == 3
    assert len(merge_overlapping(cands, {"d": text}, k=3, touch=64, max_chars=30)) == 3


def test_a_gap_join_never_overlaps_another_passage() -> None:
    text = "y" * 400
    sec = ("Guide",)
    a = Chunk.make("d", 0, 50, text[0:50], sec)
    b = Chunk.make("d", 120, 170, text[120:170], sec)
    c = Chunk.make("d", 60, 130, text[60:130], sec)  # overlaps b: joins b, not a across the gap
    hits = merge_overlapping([Candidate(a, 0.9), Candidate(b, 0.8), Candidate(c, 0.7)], {"d": text}, k=3,
                             gap=40, max_chars=1000)
    spans = [(h.start, h.end) for h in hits]
    assert spans == [(0, 50), (60, 170)]
    # ... and a gap join that would reach over another passage is not made.
    d = Chunk.make("d", 60, 110, text[60:110], sec)
    hits = merge_overlapping([Candidate(a, 0.9), Candidate(b, 0.8), Candidate(d, 0.7)], {"d": text}, k=3,
                             gap=80, max_chars=1000)
    assert all(x.end <= y.start or y.end <= x.start for i, x in enumerate(hits) for y in hits[i + 1:])


def test_near_duplicates_from_other_documents_are_dropped() -> None:
    a = Candidate(Chunk.make("psql.html", 0, 10, "a" * 10), 0.9)
    copy = Candidate(Chunk.make("pg_dump.html", 0, 10, "a" * 10), 0.8)
    same_doc = Candidate(Chunk.make("psql.html", 50, 60, "b" * 10), 0.7)
    other = Candidate(Chunk.make("vacuum.html", 0, 10, "c" * 10), 0.6)
    vecs = np.array([[1.0, 0.0], [0.99, 0.141], [0.99, 0.141], [0.0, 1.0]], dtype=np.float32)
    assert drop_near_duplicates([a, copy, same_doc, other], vecs, 0.9) == [a, same_doc, other]
    assert drop_near_duplicates([a, copy, same_doc, other], vecs, 1.0) == [a, copy, same_doc, other]


def test_a_text_copied_into_many_documents_fills_one_slot(tmp_path, hash_embedder) -> None:
    from assistant.settings import Settings

    docs = tmp_path / "docs"
    docs.mkdir()
    option = "The -p option specifies the TCP port on which the server is listening for connections."
    for name in ("psql", "pg_dump", "pg_restore", "createdb"):
        (docs / f"{name}.txt").write_text(f"Options\n\n{option}\n", encoding="utf-8")  # man pages alike
    (docs / "config.txt").write_text("port\n\nThe TCP port the server listens on; 5432 by default.\n",
                                     encoding="utf-8")
    s = Settings.load(env={}, docs_dir=docs, index_dir=tmp_path / "index", retrieval="dense")
    build_index(s, embedder=hash_embedder)
    hits = Retriever.open(s, hash_embedder).search("TCP port the server is listening on", 5)
    assert sum(option in h.text for h in hits) == 1
    assert any("5432" in h.text for h in hits)
    s = s.replace(duplicate_threshold=1.0)
    hits = Retriever.open(s, hash_embedder).search("TCP port the server is listening on", 5)
    assert sum(option in h.text for h in hits) == 4


def test_hybrid_finds_exact_terms_and_dense_finds_paraphrases(settings, hash_embedder) -> None:
    build_index(settings, embedder=hash_embedder)
    r = Retriever.open(settings, hash_embedder)
    top = r.search("Bellevue Washington employees", 3)
    assert top[0].source == "tiktok-shop-shifts-control-to-china.txt"
    assert "Bellevue" in top[0].text
    bm25_only = r.search("Douyin livestream", 3, retrieval="bm25")
    assert all("Douyin" in h.text or "livestream" in h.text for h in bm25_only)
    for h in top:
        assert r.document_text(h.source)[h.start:h.end] == h.text


def test_concurrent_queries_give_the_same_results_as_sequential(articles_assistant) -> None:
    queries = ["Who did TikTok hire from Amazon?", "What does Alex Turner bring?", "privacy concerns",
               "How many people worked in Bellevue?", "livestream shopping", "Douyin strategy",
               "competition with Amazon and Meta", "What is the capital of France?"] * 3
    r = articles_assistant.retriever
    sequential = [[(h.source, h.start, h.end, round(h.score, 9)) for h in r.search(q)] for q in queries]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda q: [(h.source, h.start, h.end, round(h.score, 9))
                                            for h in r.search(q)], queries))
    assert parallel == sequential
    answers_seq = [articles_assistant.ask(q).text for q in queries[:8]]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers_par = list(pool.map(lambda q: articles_assistant.ask(q).text, queries[:8]))
    assert answers_par == answers_seq


def test_follow_up_context_brings_the_subject_back(articles_assistant) -> None:
    from assistant.records import Turn

    q = "Who is Alex Turner?"
    first = articles_assistant.ask(q)
    assert "Alex Turner" in first.text
    follow = articles_assistant.ask("What is his expertise?", history=[Turn(q, first.text)])
    assert not follow.abstained
    assert "user behavior analysis" in follow.text or "personalized marketing" in follow.text
    alone = articles_assistant.ask("What is his expertise?")
    assert "user behavior analysis" not in alone.text.split("[1]")[0], "without history it cannot know who"


def test_coverage_is_the_share_of_the_query_idf_mass_one_bm25_hit_holds(settings, hash_embedder) -> None:
    build_index(settings, embedder=hash_embedder)
    r = Retriever.open(settings, hash_embedder)
    keys = [key for key, _ in r.reader.bm25(["bellevu", "washington"], 3)]
    assert r.coverage(["bellevu", "washington"], keys) == 1.0  # a hit holds both words
    # A word no chunk holds says nothing about the hits: it leaves the share as it was.
    assert r.coverage(["bellevu", "washington", "zzqxv"], keys) == 1.0
    assert r.coverage(["zzqxv"], keys) == 0.0


def test_a_query_its_bm25_hits_barely_hold_leans_on_the_dense_ranking(settings, hash_embedder) -> None:
    build_index(settings, embedder=hash_embedder)
    q = "Bellevue Washington employees Douyin"
    always = Retriever.open(settings.replace(bm25_coverage=1.01), hash_embedder).search(q, 5)  # every query leans
    halved = Retriever.open(settings.replace(bm25_coverage=0.0, bm25_weight=0.5), hash_embedder).search(q, 5)
    never = Retriever.open(settings.replace(bm25_coverage=0.0), hash_embedder).search(q, 5)
    assert [(h.source, h.start) for h in always] == [(h.source, h.start) for h in halved]
    assert [h.score for h in always] != [h.score for h in never]
