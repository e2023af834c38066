"""Question analysis: the answer type a question expects, its focus noun and the named thing it asks about.
The extractive answerer abstains when no retrieved passage can supply them."""

from __future__ import annotations

import pytest

from assistant.answer.extractive import ExtractiveAnswerer, Scoring
from assistant.answer.question import analyze, has_type, names
from assistant.embed import HashEmbedder
from assistant.records import Hit


@pytest.mark.parametrize(("question", "expected", "focus", "subject"), [
    ("What is the capital of France?", None, "capital", ("France",)),
    ("Who is the CEO of ByteDance?", None, "ceo", ("ByteDance",)),
    ("What is the expertise of him?", None, "expertise", ()),
    ("What was the role of Jane Williams at Amazon?", None, "", ("Jane", "Williams", "Amazon")),
    ("What is the purpose of the with statement?", None, "", ()),
    ("How many users does TikTok have?", "count", "", ()),
    ("What share of sales comes from livestreams?", "percent", "", ()),
    ("When did Alex Turner start working at Meta?", "date", "", ()),
    ("How much is Jane Williams paid?", "money", "", ()),
])
def test_analyze(question: str, expected: str | None, focus: str, subject: tuple[str, ...]) -> None:
    info = analyze(question)
    assert (info.expected, info.focus, info.subject) == (expected, focus, subject)


def test_how_many_names_what_is_counted() -> None:
    assert analyze("How many people worked in Bellevue?").counted[0] == "people"


@pytest.mark.parametrize(("sentence", "expected", "ok"), [
    ("TikTok employed about 1,700 people.", "count", True),
    ("TikTok employed many people.", "count", False),
    ("Revenue reached $3 billion.", "money", True),
    ("About 40% of sales were live.", "percent", True),
    ("She joined in March 2021.", "date", True),
    ("She joined recently.", "date", False),
])
def test_has_type(sentence: str, expected: str, ok: bool) -> None:
    assert has_type(sentence, expected) is ok


def _hit(text: str, source: str = "a.txt") -> Hit:
    return Hit(1, 1.0, source, 0, len(text), text)


@pytest.mark.parametrize(("question", "answers"), [
    ("What is the capital of Spain?", True),
    ("What is the capital of France?", False),  # the named subject is in no passage
    ("What is the currency of Spain?", False),  # neither is the focus noun
])
def test_subject_or_focus_missing_from_every_passage_abstains(question: str, answers: bool) -> None:
    text = "Madrid is the capital of Spain and its largest city by population."
    answerer = ExtractiveAnswerer(HashEmbedder().embed, threshold=-1.0)
    ans = answerer.answer(question, [_hit(text)], {"a.txt": text}, {})
    assert ans.abstained is not answers, ans.text


def test_question_words_in_a_sentence_heading_count_as_overlap() -> None:
    """Reference pages state a parameter's default under its name, not in the sentence: without the heading
    the answer quotes the other parameter's default."""
    from assistant.records import Document, Section

    text = "other_setting (integer)\n\nThe default value is two megabytes.\n\nwork_mem (integer)\n\n" \
           "The default value is four megabytes."
    sections = (Section(0, 3, "other_setting (integer)"), Section(text.index("work_mem"), 3, "work_mem (integer)"))
    doc = Document("c.html", text, "0", "Resource Consumption", sections)
    for scoring, quote in ((Scoring(), "four"), (Scoring(heading_lexical=False), "two")):
        answerer = ExtractiveAnswerer(HashEmbedder().embed, threshold=-1.0, max_sentences=1, scoring=scoring)
        ans = answerer.answer("What is the default for work_mem?", [_hit(text, "c.html")], {"c.html": text},
                              {"c.html": doc})
        assert quote in ans.citations[0].quote


@pytest.mark.parametrize(("question", "found"), [
    ("What changed in PostgreSQL 23?", [("PostgreSQL 23", "version")]),
    ("What is new in Python 3.19?", [("Python 3.19", "version")]),
    ("When porting code to Python 3, which Python 2 versions remain?", [("Python 3", "version"), ("Python 2", "version")]),
    ("What did Linus Torvalds write?", [("Linus Torvalds", "proper")]),
    ("What is the default value of shared_buffers?", [("shared_buffers", "code")]),
    ("What is the difference between re.match() and re.search()?", [("re.match()", "code"), ("re.search()", "code")]),
    ("Why do I get an UnboundLocalError here?", [("UnboundLocalError", "code")]),
    ("What does `work_mem` do?", [("work_mem", "code")]),
    ("Why does it say 'No such file or directory'?", [("No such file or directory", "quoted")]),
    ("What User-Agent does urllib send?", [("User-Agent", "proper")]),
    ("Does SQLSTATE 23505 mean a duplicate key?", [("SQLSTATE", "proper")]),  # no version: 5 digits
    ("Did the American team hit its numbers?", []),  # a nationality adjective names nothing
    ("Python is great. Why is it slow? Maybe not.", []),  # sentence-initial words are not names
    ("I think I'm lost", []),
])
def test_names(question: str, found: list[tuple[str, str]]) -> None:
    assert [(n.text, n.kind) for n in names(question)] == found


def test_a_version_keeps_its_base_and_number() -> None:
    (n,) = names("Is PostgreSQL 15.2 faster?")
    assert (n.kind, n.base, n.version) == ("version", "PostgreSQL", "15.2")
