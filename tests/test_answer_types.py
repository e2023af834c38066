"""What a question asks for (a default, the definition of a term) and which sentences hold it."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.answer.extractive import (
    ExtractiveAnswerer,
    Scoring,
    asked_for,
    gives,
    gives_a_reason,
    is_why,
    is_yes_no,
    takes_a_side,
)
from assistant.records import Document, Hit, Section


@pytest.mark.parametrize(("question", "default", "term"), [
    ("What is the default value of shared_buffers?", True, set()),
    ("And what is the default for work_mem?", True, set()),
    ("What is a hot standby?", False, {"hot", "standbi"}),
    ("What does CREATE EXTENSION actually do?", False, {"creat", "extens"}),
    ("What is pg_basebackup used for?", False, {"pg_basebackup"}),
    ("Why is random_page_cost only 4.0?", False, set()),
    ("What is the difference between the -> and ->> operators on a JSON value?", False, set()),
])
def test_asked_for(question: str, default: bool, term: set[str]) -> None:
    got_default, got_term = asked_for(question)
    assert (got_default, set(got_term)) == (default, term)


def test_gives() -> None:
    _, term = asked_for("What is a hot standby?")
    assert gives("Hot standby is the term used to describe read-only queries during recovery.", False, term)
    assert not gives("Queries can run on a hot standby server.", False, term)
    assert gives("The default value is four megabytes (4MB).", True, frozenset())
    assert not gives("Sets the base maximum amount of memory to be used.", True, frozenset())


def test_the_bonus_moves_the_sentence_that_holds_the_default_first() -> None:
    text = ("work_mem\n\nSets the base maximum amount of memory used by a query operation before writing to "
            "temporary disk files. If this value is specified without units, it is taken as kilobytes. "
            "The default value is four megabytes (4MB).")
    doc = Document("c.html", text, "sha", "Config")
    hit = Hit(1, 1.0, "c.html", 0, len(text), text, (), None, ("c",), None, None)

    def embed(texts):  # noqa: ANN001, ANN202  every sentence equally similar: only the bonus separates them
        return np.ones((len(texts), 4), np.float32) / 2

    q = "What is the default for work_mem?"
    args = (q, [hit], {"c.html": text}, {"c.html": doc})
    cands, plain, _ = ExtractiveAnswerer(embed, threshold=0.1, scoring=Scoring(asked_for=0.0)).score(*args)
    _, bonus, _ = ExtractiveAnswerer(embed, threshold=0.1, scoring=Scoring(asked_for=0.1)).score(*args)
    extra = {c.text: round(float(b - p), 6) for c, p, b in zip(cands, plain, bonus, strict=True)}
    assert extra == {"Sets the base maximum amount of memory used by a query operation before writing to temporary "
                     "disk files.": 0.0, "If this value is specified without units, it is taken as kilobytes.": 0.0,
                     "The default value is four megabytes (4MB).": 0.1}



def test_a_named_term_is_answered_from_its_own_section() -> None:
    text = ("work_mem (integer)\n\nSets the base maximum amount of memory used by a query operation. "
            "The default value is four megabytes (4MB).\n\nhash_mem_multiplier (floating point)\n\n"
            "Used to compute the maximum amount of memory that hash-based operations can use. "
            "The default value is 2.0, which makes hash-based operations use twice the usual work_mem.")
    starts = [0, text.index("hash_mem_multiplier")]
    doc = Document("c.html", text, "sha", "Resource Consumption",
                   sections=tuple(Section(s, 2, text[s:text.index("\n", s)]) for s in starts))
    hit = Hit(1, 1.0, "c.html", 0, len(text), text, (), None, ("c",), None, None)

    def embed(texts):  # noqa: ANN001, ANN202  the other section's sentence is the closer one
        return np.array([[1.0, 0.0] if "2.0" in t or t.startswith("And") else [0.8, 0.6] for t in texts],
                        np.float32)

    args = ("And what is the default for work_mem?", [hit], {"c.html": text}, {"c.html": doc})
    off = ExtractiveAnswerer(embed, threshold=0.1, max_sentences=1, scoring=Scoring(term_section=0.0)).answer(*args)
    on = ExtractiveAnswerer(embed, threshold=0.1, max_sentences=1).answer(*args)
    assert [c.quote for c in off.citations] == ["The default value is 2.0, which makes hash-based operations use "
                                                "twice the usual work_mem."]
    assert [c.quote for c in on.citations] == ["The default value is four megabytes (4MB)."]


def test_a_default_question_about_a_named_term_takes_the_sentence_that_states_its_default() -> None:
    text = ("maintenance_work_mem (integer)\n\nSpecifies the maximum amount of memory to be used by maintenance "
            "operations. Be careful not to set the default value too high. It defaults to 64 megabytes (64MB).")
    doc = Document("c.html", text, "sha", "Resource Consumption", sections=(Section(0, 2, text[:text.index("\n")]),))
    hit = Hit(1, 1.0, "c.html", 0, len(text), text, (), None, ("c",), None, None)

    def embed(texts):  # noqa: ANN001, ANN202  the short sentence that states the default is the least similar
        return np.array([[0.8, 0.6] if t.startswith("It defaults") else [1.0, 0.0] for t in texts], np.float32)

    args = ("What is the default value of maintenance_work_mem?", [hit], {"c.html": text}, {"c.html": doc})
    bare = Scoring(term_default=0.0, compose=False)  # the sentence scores alone, no quote composition
    off = ExtractiveAnswerer(embed, threshold=0.1, max_sentences=1, scoring=bare).answer(*args)
    on = ExtractiveAnswerer(embed, threshold=0.1, max_sentences=1).answer(*args)
    assert [c.quote for c in off.citations] == ["Be careful not to set the default value too high."]
    assert [c.quote for c in on.citations] == ["It defaults to 64 megabytes (64MB)."]
    # Without the bonus, composition still reaches on to the sentence that states the default.
    composed = ExtractiveAnswerer(embed, threshold=0.1, max_sentences=1, scoring=Scoring(term_default=0.0))
    assert [c.quote for c in composed.answer(*args).citations] == [
        "Be careful not to set the default value too high. It defaults to 64 megabytes (64MB)."]


@pytest.mark.parametrize(("question", "yes_no"), [
    ("Can pg_basebackup back up just one database?", True),
    ("And is it stable?", True),
    ("Does EXPLAIN ANALYZE execute the statement?", True),
    ("What does VACUUM FULL do?", False),
    ("How do I cancel a query?", False),
    ("Is there a way to log slow queries?", True),
])
def test_is_yes_no(question: str, yes_no: bool) -> None:
    assert is_yes_no(question) is yes_no


def test_a_yes_no_question_prefers_the_sentence_that_takes_a_side() -> None:
    assert takes_a_side("It is not possible to back up individual databases.")
    assert takes_a_side("Backups are always taken of the entire cluster.")
    assert not takes_a_side("pg_basebackup makes an exact copy of the cluster's files.")
    text = ("pg_basebackup makes an exact copy of the database cluster's files. Backups are always taken of the "
            "entire database cluster; it is not possible to back up individual databases.")
    doc = Document("b.html", text, "sha", "pg_basebackup")
    hit = Hit(1, 1.0, "b.html", 0, len(text), text, (), None, ("c",), None, None)

    def embed(texts):  # noqa: ANN001, ANN202  the plain description is the closer one
        return np.array([[1.0, 0.0] if t.startswith(("pg_", "Can")) else [0.95, 0.312] for t in texts], np.float32)

    args = ("Can pg_basebackup back up just one database?", [hit], {"b.html": text}, {"b.html": doc})
    off = ExtractiveAnswerer(embed, threshold=0.1, max_sentences=1, scoring=Scoring(yes_no=0.0)).answer(*args)
    on = ExtractiveAnswerer(embed, threshold=0.1, max_sentences=1).answer(*args)
    assert off.citations[0].quote.startswith("pg_basebackup makes")
    assert on.citations[0].quote.startswith("Backups are always")


def test_a_why_question_prefers_the_sentence_that_gives_the_reason() -> None:
    assert is_why("Why is random_page_cost only 4.0?") and is_why("And why not?")
    assert not is_why("What is random_page_cost?")
    assert gives_a_reason("A lower default is used because most random reads are assumed to be in cache.")
    assert not gives_a_reason("Random access to storage is normally much more expensive.")
    text = ("Random access to storage is normally much more expensive than four times sequential access. "
            "A lower default for random_page_cost is used because most random reads are assumed to be in cache.")
    doc = Document("q.html", text, "sha", "Planner")
    hit = Hit(1, 1.0, "q.html", 0, len(text), text, (), None, ("c",), None, None)

    def embed(texts):  # noqa: ANN001, ANN202  the sentence without the reason is the closer one
        return np.array([[1.0, 0.0] if t.startswith(("Random", "Why")) else [0.9, 0.436] for t in texts], np.float32)

    args = ("Why is random_page_cost only 4.0?", [hit], {"q.html": text}, {"q.html": doc})
    off = ExtractiveAnswerer(embed, threshold=0.1, max_sentences=1, scoring=Scoring(why=0.0)).answer(*args)
    on = ExtractiveAnswerer(embed, threshold=0.1, max_sentences=1).answer(*args)
    assert off.citations[0].quote.startswith("Random access")
    assert on.citations[0].quote.startswith("A lower default")
