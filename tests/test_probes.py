"""Probe generation: unanswerable rewrites of answerable questions whose new subject the corpus never names
(checked against the index's term counts and the corpus text), and answerable controls."""

from __future__ import annotations

import pytest

from assistant.answer.question import names, version_mentions
from assistant.evaluate.probes import KNOWN, PRODUCTS, make_controls, make_probes
from assistant.evaluate.questions import Question
from assistant.index.terms import tokenize

TEXTS = {
    "intro.txt": "PostgreSQL 15 is a database. Each table holds rows; a query reads them in a transaction.",
    "config.txt": "shared_buffers sets the memory for the buffer cache of the PostgreSQL 15 server.",
    "history.txt": "PostgreSQL descends from Ingres. Upgrading from PostgreSQL 9.6 keeps every table.",
    "port.txt": "PostgreSQL 15 listens on port 5432; the column and index of each table are described.",
    "other.txt": "Rows, columns, an index and a query: the database keeps them in tables.",
}


FILLER = [f"Section {i} is about rows and columns." for i in range(30)]  # so that Ingres is rare: 1 of 35


def term_counts(terms):  # noqa: ANN001, ANN201
    chunks = [set(tokenize(t)) for t in [*TEXTS.values(), *FILLER]]
    return {t: sum(t in c for c in chunks) for t in terms}, len(chunks)


def texts():  # noqa: ANN201
    return iter(TEXTS.values())


def question(id: str, text: str, answerable: bool = True, follows: str | None = None) -> Question:
    gold = ("intro.txt",) if answerable else ()
    return Question(id, text, gold, ("PostgreSQL 15 is a database.",) if answerable else (),
                    "a database" if answerable else "", answerable, "fact" if answerable else "unanswerable",
                    follows)


QUESTIONS = [
    question("port", "Which port does the PostgreSQL server listen on?"),
    question("buffers", "What does shared_buffers set?"),
    question("upgrade", "Can I upgrade from PostgreSQL 9.6?"),
    question("rows", "How are rows kept in a table?"),
    question("rows-b", "And in which order?", follows="rows"),
    question("none", "Who won the Tour?", answerable=False),
]


def _absent(name: str) -> bool:
    df, _ = term_counts(tokenize(name))
    return all(v == 0 for v in df.values())


def test_each_strategy_swaps_in_something_the_corpus_never_names() -> None:
    probes = make_probes(QUESTIONS, term_counts, 50, texts)
    by = {(p.source_id, p.strategy): p for p in probes}
    topic = by[("port", "topic")]
    assert topic.original == "PostgreSQL" and topic.replacement in PRODUCTS["databases"]  # the corpus' field
    assert topic.question.question == f"Which port does the {topic.replacement} server listen on?"
    code = by[("buffers", "code")]
    assert code.original == "shared_buffers" and code.replacement.startswith("shared_buffers_")
    version = by[("upgrade", "version")]
    assert version.original == "9.6" and ("postgresql", version.replacement) not in version_mentions(
        " ".join(TEXTS.values()))
    added = by[("rows", "add")]
    assert added.question.question == f"How are rows kept in a table in {added.replacement}?"
    for p in probes:
        assert not p.question.answerable and p.question.kind == "probe" and p.question.follows is None
        assert not p.question.gold_sources and not p.question.gold_quotes and p.source_id != "rows-b"
        if p.strategy.endswith("-known"):  # named elsewhere in the corpus, not about this
            assert p.replacement in KNOWN["databases"] and not _absent(p.replacement)
        elif p.strategy in ("topic", "add", "name", "person", "code"):
            assert _absent(p.replacement), p
            assert any(p.replacement in n.text for n in names(p.question.question)), p  # the rules can see it
    assert ("history", "known") not in by and by[("port", "topic-known")].replacement == "Ingres"
    assert len({p.question.id for p in probes}) == len(probes)
    assert make_probes(QUESTIONS, term_counts, 50, texts) == probes  # reproducible


def test_the_count_is_a_cap_and_versions_need_the_texts() -> None:
    assert len(make_probes(QUESTIONS, term_counts, 2, texts)) == 2
    without_texts = make_probes(QUESTIONS, term_counts, 50)
    assert not [p for p in without_texts if p.strategy == "version"]
    assert [p for p in without_texts if p.source_id == "upgrade"]  # another strategy took its place


@pytest.mark.parametrize(("ident", "made"), [
    ("What does shared_buffers set?", True),
    ("What is __init__.py for?", False),  # a made-up file extension is no near miss
])
def test_made_up_identifiers(ident: str, made: bool) -> None:
    probes = make_probes([question("q", ident)], term_counts, 10, texts)
    assert any(p.strategy == "code" for p in probes) is made


def test_controls_add_the_corpus_own_subject_and_version_and_keep_the_gold() -> None:
    controls = make_controls(QUESTIONS, term_counts, 10, texts)
    assert [c.question.question for c in controls] == ["How are rows kept in a table in PostgreSQL?"]
    more = QUESTIONS + [question("cols", "What is a column?")]
    second = make_controls(more, term_counts, 10, texts)[1]
    assert second.question.question == "What is a column in PostgreSQL 15?"  # the highest that 3 texts write
    assert second.question.answerable and second.question.gold_quotes == more[-1].gold_quotes
    assert second.question.kind == "control" and second.source_id == "cols"
