"""Sentence vectors made at index time: answers read them instead of embedding, and a stored vector can
only ever be found for the very words it was computed from."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np


class Recording:
    """A HashEmbedder that remembers every text it embeds."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner = inner
        self.model_id, self.dimension, self.max_tokens = inner.model_id, inner.dimension, inner.max_tokens
        self.texts: list[str] = []

    def embed(self, texts, *, batch_size: int = 64, progress: bool = False):  # noqa: ANN001, ANN201
        self.texts += list(texts)
        return self.inner.embed(texts, batch_size=batch_size)

    def count_tokens(self, texts):  # noqa: ANN001, ANN201
        return self.inner.count_tokens(texts)


def _open(settings, emb):  # noqa: ANN001, ANN202
    from assistant.app import Assistant

    return Assistant.open(settings, embedder=emb)


def test_an_answer_embeds_only_the_question(settings, hash_embedder) -> None:
    from assistant.index.sentvec import FILE

    emb = Recording(hash_embedder)
    a = _open(settings, emb)
    assert (settings.index_dir / FILE).exists()
    emb.texts.clear()
    for q in ("Who is Jane Williams?", "What expertise do the Amazon and Meta veterans bring to TikTok?"):
        ans = a.ask(q)
        assert not ans.abstained and ans.citations
        assert emb.texts == [q], emb.texts[:5]  # the query for search; every sentence came from the index
        emb.texts.clear()
    assert a._extractive.cache.embedded == 0


def test_every_sentence_the_answerer_scores_was_stored(settings, hash_embedder) -> None:
    from assistant.index.fill import backend_of
    from assistant.index.sentvec import SentenceLookup

    a = _open(settings, hash_embedder)
    ex = a._extractive
    look = SentenceLookup(settings.index_dir, hash_embedder.model_id, backend_of(hash_embedder),
                          hash_embedder.dimension)
    try:
        hits = a.retriever.search("TikTok Shop sellers and logistics", k=8)
        cands = ex.candidates(hits, a.retriever.doc_texts, a.retriever.reader.documents)
        texts = [c.text for c in cands]
        found = look(texts)
        assert texts and set(found) == set(texts)
        for t in texts[:10]:
            assert np.allclose(found[t], hash_embedder.embed([t])[0])
    finally:
        look.close()


def test_a_changed_sentence_gets_its_own_vector_and_is_quoted(settings, hash_embedder) -> None:
    from assistant.index.fill import backend_of
    from assistant.index.sentvec import SentenceLookup

    a = _open(settings, hash_embedder)
    path = next(Path(settings.docs_dir).glob("*.txt"))
    new = "Zebrafish logistics specialists were hired to run the warehouses in Ohio."
    path.write_text(path.read_text(encoding="utf-8") + "\n\n" + new + "\n", encoding="utf-8")
    a = _open(settings, hash_embedder)
    look = SentenceLookup(settings.index_dir, hash_embedder.model_id, backend_of(hash_embedder),
                          hash_embedder.dimension)
    try:
        got = look([new])
        assert np.allclose(got[new], hash_embedder.embed([new])[0])
    finally:
        look.close()
    ans = a.ask("Who runs the zebrafish logistics warehouses in Ohio?")
    assert any(c.quote == new for c in ans.citations), ans.text
    for c in ans.citations:
        assert a.document_text(c.source)[c.start:c.end] == c.quote


def test_without_stored_vectors_answers_embed_as_before(settings, hash_embedder) -> None:
    from assistant.index.sentvec import FILE

    s = replace(settings, sentence_vectors=False)
    emb = Recording(hash_embedder)
    a = _open(s, emb)
    assert not (s.index_dir / FILE).exists()
    emb.texts.clear()
    ans = a.ask("Who is Jane Williams?")
    assert not ans.abstained
    assert len(emb.texts) > 1 and a._extractive.cache.embedded == len(emb.texts) - 1


def test_the_store_is_bounded_and_a_trimmed_sentence_is_embedded_when_quoted(settings, hash_embedder) -> None:
    from assistant.index.embcache import EmbeddingCache
    from assistant.index.sentvec import FILE, namespace

    s = replace(settings, sentence_store_mb=0.01)  # ~6 vectors of 64-d
    a = _open(s, hash_embedder)
    store = EmbeddingCache(s.index_dir, namespace(hash_embedder.model_id, "torch", 64), 64, file=FILE)
    try:
        assert 0 < len(store) <= store.rows_within(0.01)
    finally:
        store.close()
    ans = a.ask("Who is Jane Williams?")
    assert not ans.abstained and "Jane Williams" in ans.text


def test_quotable_texts_are_the_candidates_of_a_whole_document() -> None:
    from assistant.answer.extractive import ExtractiveAnswerer
    from assistant.quotable import quotable_texts
    from assistant.records import Document, Hit, Section

    text = ("Intro\n\nWhat is a widget?\n\nA widget is a small part that does one job well. It ships in boxes "
            "of ten.\n\n>>> widget()\n\nShort line\n\nThe end of the widget story is near, said everyone.")
    doc = Document("w.txt", text, "sha", "Widgets", sections=(Section(0, 0, "Intro"),))
    ex = ExtractiveAnswerer(lambda ts: np.zeros((len(ts), 4), np.float32), threshold=0.3)
    hit = Hit(1, 1.0, "w.txt", 0, len(text), text, (), None, ("c",), None, None)
    cands = ex.candidates([hit], {"w.txt": text}, {"w.txt": doc})
    q = quotable_texts(doc)
    assert [c.text for c in cands] == [t for t in q if not t.endswith("?")]
    assert "What is a widget?" in q and ">>> widget()" not in q and "Short line" not in q


def test_new_quotable_rules_rescan_a_store_written_under_old_ones(settings, hash_embedder) -> None:
    import sqlite3

    from assistant.index.sentvec import FILE, done_mark, fill_sentences

    _open(settings, hash_embedder)
    assert fill_sentences(settings, hash_embedder) == (0, 0)  # every document done under today's rules
    con = sqlite3.connect(settings.index_dir / FILE)
    with con:
        marks = dict(con.execute("SELECT path, sha256 FROM documents"))
        assert marks and all(m == done_mark(m.split()[0]) for m in marks.values())
        con.executemany("UPDATE documents SET sha256 = ? WHERE path = ?",  # as a store of version 1 wrote it
                        [(m.split()[0], p) for p, m in marks.items()])
    con.close()
    looked, embedded = fill_sentences(settings, hash_embedder)
    assert looked > 0 and embedded == 0  # looked at again; nothing new to embed under the same rules
    assert fill_sentences(settings, hash_embedder) == (0, 0)
