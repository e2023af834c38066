"""Chunking: exact offsets, size and overlap, structure, and the no-truncation guarantee on a real corpus."""

from __future__ import annotations

import pytest

from assistant import tokens as tk
from assistant.chunk import chunk_document, embedding_text
from assistant.records import Document, Section

from .conftest import PGDOCS, PYDOCS, require


def _doc(text: str, sections: tuple[Section, ...] = ()) -> Document:
    return Document("t.txt", text, "0" * 64, "Title", sections)


def _prose(n: int) -> str:
    return " ".join(f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(n))


def test_offsets_map_back_to_the_source_text() -> None:
    text = "Intro line.\n\n" + "\n\n".join(_prose(5) for _ in range(6))
    doc = _doc(text)
    chunks = chunk_document(doc, tokens=60, overlap=12)
    assert len(chunks) > 3
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert c.text == c.text.strip()


def test_size_and_overlap_are_respected() -> None:
    doc = _doc(_prose(80))
    chunks = chunk_document(doc, tokens=64, overlap=16)
    sizes = tk.count([c.text for c in chunks])
    assert max(sizes) <= 64 + 2  # joining whitespace can add a token
    assert min(sizes[:-1]) >= 32
    for a, b in zip(chunks, chunks[1:], strict=False):
        shared = a.end - b.start
        assert shared > 0, "neighbours overlap"
        assert tk.count([doc.text[b.start:a.end]])[0] <= 16


def test_chunks_end_at_sentence_boundaries() -> None:
    doc = _doc(_prose(40))
    for c in chunk_document(doc, tokens=50, overlap=0):
        assert c.text.endswith("."), c.text[-30:]


def test_a_sentence_longer_than_a_chunk_is_windowed() -> None:
    words = " ".join(f"word{i}" for i in range(400))
    doc = _doc(words + ".")
    chunks = chunk_document(doc, tokens=50, overlap=10)
    assert len(chunks) > 5
    assert max(tk.count([c.text for c in chunks])) <= 50
    assert chunks[0].start == 0 and chunks[-1].end == len(doc.text)


def test_sections_start_new_chunks_and_give_heading_paths() -> None:
    a = "Alpha\n\n" + _prose(12)
    b = "Beta\n\n" + _prose(12)
    text = a + "\n\n" + b
    doc = _doc(text, (Section(0, 1, "Alpha"), Section(len(a) + 2, 1, "Beta")))
    chunks = chunk_document(doc, tokens=400, overlap=0)
    assert [c.headings for c in chunks] == [("Alpha",), ("Beta",)]
    assert chunks[1].start == len(a) + 2


def test_model_limit_recuts_chunks_that_would_be_truncated() -> None:
    doc = _doc(_prose(30))
    # A tokenizer that counts 3 pieces per word: a 100-token chunk would not fit a 120-piece model.
    def count(texts: list[str]) -> list[int]:
        return [3 * len(t.split()) + 2 for t in texts]

    chunks = chunk_document(doc, tokens=100, overlap=10, max_model_tokens=120, count_model=count)
    assert all(n <= 120 for n in count([embedding_text(doc, c) for c in chunks]))
    covered = "".join(doc.text[c.start:c.end] for c in chunks)
    assert "Sentence number 29" in covered


def _real_corpus(name: str) -> list:
    from assistant.load import scan_folder

    if name == "python":  # the Python FAQ, tutorial and HOWTO sources (reStructuredText)
        root = require(PYDOCS, "python3.11-doc")
        files = [f for sub in ("faq", "tutorial", "howto") for f in scan_folder(root / sub)[0]]
        assert len(files) > 40
        return files
    # Every fifth PostgreSQL HTML page: long tables, code listings and reference pages.
    pages = [f for f in scan_folder(require(PGDOCS, "postgresql-doc-15"))[0] if f.rel.endswith(".html")]
    assert len(pages) > 1000
    return pages[::5]


@pytest.mark.slow
@pytest.mark.parametrize(("corpus", "size", "overlap"), [("python", 200, 40), ("postgresql", 128, 24),
                                                         ("postgresql", 256, 48)])
def test_no_chunk_exceeds_the_model_limit_on_real_docs(real_embedder, corpus: str, size: int,
                                                        overlap: int) -> None:
    """The real model, its real tokenizer, real documentation sources."""
    from assistant.load import load_file

    total = 0
    for f in _real_corpus(corpus):
        doc = load_file(f)
        chunks = chunk_document(doc, tokens=size, overlap=overlap, max_model_tokens=real_embedder.max_tokens,
                                count_model=real_embedder.count_tokens)
        texts = [embedding_text(doc, c) for c in chunks]
        lengths = real_embedder.count_tokens(texts)
        assert max(lengths) <= real_embedder.max_tokens, f.rel
        assert all(doc.text[c.start:c.end] == c.text for c in chunks)
        assert len({c.id for c in chunks}) == len(chunks), f.rel
        assert all(b.end > a.end for a, b in zip(chunks, chunks[1:], strict=False)), "no chunk inside another"
        total += len(chunks)
    assert total > 500


def test_embedding_text_carries_title_and_headings() -> None:
    doc = Document("x.md", "Body text here.", "0", "Guide", (Section(0, 2, "Setup"),))
    c = chunk_document(doc, tokens=50, overlap=0)[0]
    assert embedding_text(doc, c).startswith("Guide > Setup\n")


def test_empty_document_has_no_chunks() -> None:
    assert chunk_document(_doc("   \n\n  "), tokens=50, overlap=0) == []


def test_recut_windows_of_a_long_sentence_stay_in_text_order() -> None:
    """Found by tests/test_properties.py: the overlapping token windows of one long sentence, each re-cut
    for the model, used to interleave (starts 0, 227, 207, ...)."""
    from assistant.embed import HashEmbedder

    count = HashEmbedder().count_tokens
    doc = _doc("a-" * 600)  # 1200 characters, one sentence; twice as many word pieces as tiktoken tokens
    chunks = chunk_document(doc, tokens=128, overlap=24, max_model_tokens=256, count_model=count)
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    assert all(b.end > a.end for a, b in zip(chunks, chunks[1:], strict=False)), "no chunk inside another"
    assert chunks[0].start == 0 and chunks[-1].end == len(doc.text)
    assert max(count([embedding_text(doc, c) for c in chunks])) <= 256


def test_last_resort_character_windows_fit_the_model() -> None:
    """Found by tests/test_properties.py: text that even 8-token chunks cannot fit is cut into character
    windows, and those too must fit with their header (here 120 word pieces of title)."""
    from assistant.embed import HashEmbedder

    count = HashEmbedder().count_tokens
    doc = Document("t.txt", "=" * 400, "0" * 64, "!" * 120)
    chunks = chunk_document(doc, tokens=128, overlap=24, max_model_tokens=256, count_model=count)
    assert max(count([embedding_text(doc, c) for c in chunks])) <= 256
    assert "".join(c.text for c in chunks) == doc.text


def test_token_windows_are_trimmed_and_never_blank() -> None:
    """A long run of whitespace inside one sentence is many tokens: its windows used to become blank chunks,
    and windows started with the space of their first token."""
    doc = _doc("word " * 60 + "\t" * 3000 + " end of it.")
    chunks = chunk_document(doc, tokens=32, overlap=8)
    assert chunks and all(c.text.strip() == c.text for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(doc.text)
