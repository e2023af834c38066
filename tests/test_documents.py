"""The document manager's backend: removal excludes a document and keeps its file, deletion is only for files
uploaded through the chat, statuses say why a file is not indexed. The fake embedder keeps these fast."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.app import Assistant
from assistant.embed import HashEmbedder
from assistant.errors import DocumentError
from assistant.index import build_index
from assistant.index.library import LIBRARY, Library
from assistant.settings import Settings

BAKERY = ("The Zephyr Bakery\n\n"
          "The Zephyr Bakery in Tromso was founded by Ingrid Solberg in 1987.\n"
          "Its signature pastry is the cardamom knot, baked every morning at five.\n")
NOTES = b"# Walrus notes\n\nThe walrus counted forty-two pebbles on Tuesday.\n"


@pytest.fixture
def bakery(tmp_path: Path) -> Assistant:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bakery.txt").write_text(BAKERY, encoding="utf-8")
    return Assistant.open(Settings.load(env={}, docs_dir=docs, index_dir=tmp_path / "index"), embedder=HashEmbedder())


def _idle(a: Assistant) -> None:
    """Wait for the Assistant's background thread (merges after an update) to let go of the writer lock."""
    if a._filler is not None:
        a._filler.join()


def _paths(a: Assistant) -> set[str]:
    return {d.path for d in a.documents()}


def test_removal_excludes_the_document_keeps_the_file_and_survives_a_full_rescan(bakery: Assistant) -> None:
    docs = bakery.settings.docs_dir
    report = bakery.remove_document("bakery.txt")
    assert report.removed == ("bakery.txt",)
    assert (docs / "bakery.txt").read_text(encoding="utf-8") == BAKERY
    assert "bakery.txt" not in _paths(bakery)
    assert json.loads((bakery.settings.index_dir / LIBRARY).read_text())["excluded"] == ["bakery.txt"]
    # A later scan of the whole folder, by another process (the CLI), honours the exclusion too.
    (docs / "other.txt").write_text("The harbour seal sleeps on the pier.\n", encoding="utf-8")
    _idle(bakery)
    again = build_index(bakery.settings, embedder=HashEmbedder())
    assert again.added == ("other.txt",) and "bakery.txt" not in again.unchanged + again.added
    status = {d.path: d for d in bakery.document_statuses()}
    assert status["bakery.txt"].status == "excluded" and "stays in the folder" in status["bakery.txt"].reason
    assert status["bakery.txt"].size == len(BAKERY)
    # ... until it is included again.
    assert bakery.include_document("bakery.txt").added == ("bakery.txt",)
    assert "bakery.txt" in _paths(bakery) and Library.read(bakery.settings.index_dir).excluded == set()


def test_only_a_file_uploaded_through_the_chat_can_be_deleted(bakery: Assistant) -> None:
    docs = bakery.settings.docs_dir
    with pytest.raises(DocumentError, match="only a file uploaded through the chat"):
        bakery.remove_document("bakery.txt", delete_file=True)
    assert (docs / "bakery.txt").exists() and "bakery.txt" in _paths(bakery)  # nothing changed
    up = bakery.add_documents([("walrus.md", NOTES)])
    assert up.build is not None and up.build.added == ("walrus.md",)
    assert bakery.deletable("walrus.md") and not bakery.deletable("bakery.txt")
    bakery.remove_document("walrus.md", delete_file=True)
    assert not (docs / "walrus.md").exists() and "walrus.md" not in _paths(bakery)
    assert Library.read(bakery.settings.index_dir).uploaded == {}


def test_an_uploaded_file_the_user_changed_since_is_not_deleted(bakery: Assistant) -> None:
    docs = bakery.settings.docs_dir
    bakery.add_documents([("walrus.md", NOTES)])
    (docs / "walrus.md").write_bytes(NOTES + b"\nMy own edits.\n")
    assert not bakery.deletable("walrus.md")
    with pytest.raises(DocumentError, match="not deleted"):
        bakery.remove_document("walrus.md", delete_file=True)
    assert (docs / "walrus.md").exists()


def test_statuses_show_a_failed_file_with_its_reason_and_a_kept_previous_version(bakery: Assistant) -> None:
    docs = bakery.settings.docs_dir
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf")
    bakery.update_index()
    (docs / "bakery.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)  # no longer text
    bakery.update_index()
    status = {d.path: d for d in bakery.document_statuses()}
    assert status["broken.pdf"].status == "skipped" and "unreadable PDF" in status["broken.pdf"].reason
    kept = status["bakery.txt"]
    assert kept.status == "kept" and "binary file; kept the previous version" in kept.reason
    assert "bakery.txt" in _paths(bakery)  # the previous version still answers


def test_reindex_one_document_picks_up_its_change(bakery: Assistant) -> None:
    (bakery.settings.docs_dir / "bakery.txt").write_text(BAKERY + "It also sells rye bread.\n", encoding="utf-8")
    assert bakery.reindex_document("bakery.txt").changed == ("bakery.txt",)
    assert "rye bread" in bakery.document_text("bakery.txt")
    with pytest.raises(DocumentError, match="not a document of the index"):
        bakery.reindex_document("../secret.txt")


def test_uploading_an_excluded_file_again_brings_it_back(bakery: Assistant) -> None:
    bakery.add_documents([("walrus.md", NOTES)])
    bakery.remove_document("walrus.md")
    assert "walrus.md" not in _paths(bakery)
    up = bakery.add_documents([("walrus.md", NOTES)])
    assert any("indexed again" in s.note for s in up.saved)
    assert "walrus.md" in _paths(bakery)
