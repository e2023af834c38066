"""A follow-up is also searched with its pronoun replaced by the previous question's subject."""

from __future__ import annotations

import pytest

from assistant.index import build_index
from assistant.retrieve import Retriever
from assistant.retrieve.followup import resolve, subject_of


@pytest.mark.parametrize(("previous", "question", "resolved"), [
    ("What is a hot standby?", "Can I create temporary tables on it?",
     "Can I create temporary tables on hot standby?"),
    ("What does VACUUM FULL do that a plain VACUUM does not?", "Does it block other sessions while it runs?",
     "Does VACUUM FULL block other sessions while it runs?"),
    ("What is the default value of shared_buffers?", "Can I change its value without a restart?",
     "Can I change shared_buffers's value without a restart?"),
    ("How do I create a virtual environment?", "And how do I activate it on Windows?",
     "And how do I activate virtual environment on Windows?"),
    ("Which module generates random numbers?", "How do I pick a random element with it?", None),  # no subject
    ("What is a hot standby?", "And what is the default for work_mem?", None),  # no pronoun
    ("", "What is it?", None),
])
def test_resolve(previous: str, question: str, resolved: str | None) -> None:
    assert resolve(question, previous) == resolved


def test_subject_of() -> None:
    assert subject_of("What does CREATE EXTENSION actually do?") == "CREATE EXTENSION"
    assert subject_of("What are replication slots used for?") == "replication slots"
    assert subject_of("Why is the sky blue today, and what does that mean for the weather?") == ""


def test_the_resolved_follow_up_finds_its_subject(tmp_path, hash_embedder) -> None:
    from assistant.settings import Settings

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "standby.txt").write_text("Hot standby\n\nOn a hot standby all connections are read-only; not even "
                                      "temporary tables may be written.\n", encoding="utf-8")
    for i in range(1):  # it ranks first for the question as asked, the standby page second
        (docs / f"tables{i}.txt").write_text(f"Tables {i}\n\nYou can create temporary tables with CREATE TEMP "
                                             f"TABLE; temporary tables are dropped at the end of session {i}.\n",
                                             encoding="utf-8")
    s = Settings.load(env={}, docs_dir=docs, index_dir=tmp_path / "index", retrieval="bm25", k=3,
                      context_weight=0.0, duplicate_threshold=1.0)
    build_index(s, embedder=hash_embedder)
    q, prev = "Can I create temporary tables on it?", "What is a hot standby?"

    def top(weight: float) -> str:
        return Retriever.open(s.replace(followup_weight=weight), hash_embedder).search(q, 1, context=prev)[0].source

    assert top(0.0).startswith("tables")
    assert top(2.0) == "standby.txt"
