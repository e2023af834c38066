"""Question analysis: the answer type a question expects, its focus noun and the named thing it asks about.
The extractive answerer abstains when no retrieved passage can supply them."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.answer.extractive import ExtractiveAnswerer, Naming, Scoring
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
    for scoring, quote in ((Scoring(), "four"), (Scoring(heading_lexical=False, term_section=0.0), "two")):
        answerer = ExtractiveAnswerer(HashEmbedder().embed, threshold=-1.0, max_sentences=1, scoring=scoring)
        ans = answerer.answer("What is the default for work_mem?", [_hit(text, "c.html")], {"c.html": text},
                              {"c.html": doc})
        assert quote in ans.citations[0].quote


@pytest.mark.parametrize(("question", "found"), [
    ("What changed in PostgreSQL 23?", [("PostgreSQL 23", "version")]),
    ("What is new in Python 3.19?", [("Python 3.19", "version")]),
    ("Is Python 3 faster than Python 2?", [("Python 3", "version"), ("Python 2", "version")]),
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


class _Vocabulary:
    """The index's term statistics, for a corpus given as its chunk texts."""

    def __init__(self, chunks: list[str], documents: dict[str, str] | None = None) -> None:
        from assistant.index.terms import tokenize

        self.chunks = [set(tokenize(c)) for c in chunks]
        self.doc_texts = documents if documents is not None else {f"{i}.txt": c for i, c in enumerate(chunks)}
        self.asked: list[list[str]] = []

    def term_counts(self, terms):  # noqa: ANN001, ANN201
        self.asked.append(list(terms))
        return {t: sum(t in c for c in self.chunks) for t in terms}, len(self.chunks)


PORT = "The server listens on TCP port 5432 by default; the port setting changes it."
# 41 chunks: "PostgreSQL" in every fifth one (the corpus' topic), "Oracle" and "Ingres" in one each.
CORPUS = ([f"PostgreSQL chapter {i} covers vacuum, indexes and the planner." for i in range(8)]
          + [f"Section {i} covers tables, rows and transactions." for i in range(29)]
          + ["Porting from Oracle PL/SQL to PL/pgSQL is described here.", "Ingres was the predecessor.",
             "Answer OK to the prompt to go on.", PORT])


@pytest.mark.parametrize(("question", "answers"), [
    ("Which TCP port does the server listen on by default?", True),
    ("Which TCP port does the PostgreSQL server listen on by default?", True),  # the topic need not be there
    ("Which TCP port does the Sybase server listen on by default?", False),  # in no chunk at all
    ("Which TCP port does the Oracle server listen on by default?", False),  # in the corpus, not the passage
    ("Which TCP port does the Teradata Ingres server listen on by default?", False),  # one word is enough
    ("Which TCP port does the port_turbo setting change?", False),  # a made-up identifier
    ("Is it OK to change the port?", True),  # all-capital words are not checked in the passages
])
def test_names_the_corpus_or_the_passages_never_mention_abstain(question: str, answers: bool) -> None:
    answerer = ExtractiveAnswerer(HashEmbedder().embed, threshold=-1.0)
    ans = answerer.answer(question, [_hit(PORT)], {"a.txt": PORT}, {}, vocabulary=_Vocabulary(CORPUS))
    assert ans.abstained is not answers, ans.text


def test_without_a_vocabulary_only_the_passages_are_checked() -> None:
    answerer = ExtractiveAnswerer(HashEmbedder().embed, threshold=-1.0)
    for question, answers in (("Which TCP port does the Sybase server use?", False),
                              ("Which TCP port does the PostgreSQL server use?", False),  # no topic without df
                              ("Which TCP port does the server use?", True)):
        ans = answerer.answer(question, [_hit(PORT)], {"a.txt": PORT}, {})
        assert ans.abstained is not answers, question


def test_a_generic_head_word_does_not_make_a_name_missing() -> None:
    text = "The Washington office grew to about 500 people at its peak."
    vocab = _Vocabulary([text, "Another chunk about sellers."])
    answerer = ExtractiveAnswerer(HashEmbedder().embed, threshold=-1.0)
    for question, answers in (("How big did the Washington State office get?", True),
                              ("How big did the Oregon State office get?", False)):
        ans = answerer.answer(question, [_hit(text)], {"a.txt": text}, {}, vocabulary=vocab)
        assert ans.abstained is not answers, question


@pytest.mark.parametrize(("question", "answers"), [
    ("Which port does PostgreSQL 15 listen on?", True),  # written in another document, not the passage
    ("Which port does PostgreSQL 23 listen on?", False),  # written nowhere
    ("Which port does PostgreSQL 9 listen on?", True),  # "PostgreSQL 9.6" is a release of it
])
def test_a_version_the_corpus_never_writes_abstains(question: str, answers: bool) -> None:
    documents = {"port.txt": PORT, "release.txt": "PostgreSQL 15 adds MERGE. Upgrading from PostgreSQL 9.6 works."}
    vocab = _Vocabulary(CORPUS, documents)
    answerer = ExtractiveAnswerer(HashEmbedder().embed, threshold=-1.0)
    ans = answerer.answer(question, [_hit(PORT)], {"a.txt": PORT}, {}, vocabulary=vocab)
    assert ans.abstained is not answers, ans.text
    passages_only = ExtractiveAnswerer(HashEmbedder().embed, threshold=-1.0, naming=Naming(version_scope="passages"))
    assert passages_only.answer(question, [_hit(PORT)], {"a.txt": PORT}, {}, vocabulary=vocab).abstained


def test_naming_rules_can_be_switched_off() -> None:
    off = Naming(corpus="off", passages="off", version=False)
    answerer = ExtractiveAnswerer(HashEmbedder().embed, threshold=-1.0, naming=off)
    for question in ("Which TCP port does the Sybase server use?", "Which port does PostgreSQL 23 use?"):
        ans = answerer.answer(question, [_hit(PORT)], {"a.txt": PORT}, {}, vocabulary=_Vocabulary(CORPUS))
        assert not ans.abstained, question


def test_a_name_in_the_passage_heading_counts() -> None:
    """Reference pages name the parameter in the heading; a chunk further down the entry does not repeat it."""
    text = "Also take into account the expected number of concurrent queries on different tables."
    vocab = _Vocabulary(CORPUS + ["effective_cache_size (integer) sets the planner's assumption."])
    answerer = ExtractiveAnswerer(HashEmbedder().embed, threshold=-1.0)
    for headings, answers in ((("effective_cache_size (integer)",), True), ((), False)):
        hit = Hit(1, 1.0, "a.txt", 0, len(text), text, headings)
        ans = answerer.answer("What does effective_cache_size do?", [hit], {"a.txt": text}, {}, vocabulary=vocab)
        assert ans.abstained is not answers, headings


def test_a_proper_name_must_be_in_the_passage_of_the_best_sentence() -> None:
    """"How do I copy an object in Tcl?" finds the FAQ on copying objects; "Tcl" is only in another passage."""
    copy = "In Python, to copy an object, try copy.copy() for a shallow copy or copy.deepcopy() in general."
    tk = "Tkinter is the standard binding of Python to the Tk toolkit, which comes with Tcl."
    vocab = _Vocabulary(CORPUS + [copy, tk])
    hits = [_hit(copy), Hit(2, 0.5, "b.txt", 0, len(tk), tk)]
    texts = {"a.txt": copy, "b.txt": tk}

    def embed(texts):  # noqa: ANN001, ANN202  the copying sentence is the best match of both questions
        return np.array([[1.0, 0.0] if "copy" in t else [0.6, 0.8] for t in texts], np.float32)

    for naming, question, answers in ((Naming(), "How do I copy an object in Python?", True),
                                      (Naming(), "How do I copy an object in Tcl?", False),
                                      (Naming(best_passage=False), "How do I copy an object in Tcl?", True)):
        ans = ExtractiveAnswerer(embed, threshold=0.1, naming=naming).answer(question, hits, texts, {},
                                                                            vocabulary=vocab)
        assert ans.abstained is not answers, (question, naming.best_passage, ans.text)
