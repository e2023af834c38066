"""A quote reaches the sentence its sentence leans on, the one that finishes it, and the code it introduces."""

from __future__ import annotations

import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.answer.compose import MAX_BLOCK_CHARS, compose, leans_back, spoken
from assistant.answer.extractive import ExtractiveAnswerer, Scoring
from assistant.records import Document, Hit

STABLE = ("Sorts are guaranteed to be stable. That means that when multiple records have the same key, their "
          "original order is preserved.\n\nThe sort routines use < when making comparisons.")
WITH = ("It is good practice to use the with keyword when dealing with file objects. The advantage is that the "
        "file is properly closed after its suite finishes. Files opened otherwise stay open longer.")
VENV = ("To create a virtual environment, run the venv module as a script with the directory path::\n\n"
        "   python3 -m venv tutorial-env\n\nThis will create the tutorial-env directory.")


def span_of(text: str, sentence: str) -> tuple[int, int]:
    start = text.index(sentence)
    return start, start + len(sentence)


def test_leans_back() -> None:
    for s in ("That means that the order is kept.", "This happens because x is global.", "The advantage is speed.",
              "You can do this by setting PYTHONSTARTUP.", "In that case, use a list.",
              "Therefore, it sorts in place."):
        assert leans_back(s), s
    for s in ("Thisbe is a name.", "The sort routines use <.", "Sorts are stable.", "Thesaurus entries are sorted."):
        assert not leans_back(s), s


def test_the_sentence_that_finishes_it_is_quoted_with_it() -> None:
    s, e = span_of(STABLE, "Sorts are guaranteed to be stable.")
    a, b = compose(STABLE, s, e)
    assert STABLE[a:b] == ("Sorts are guaranteed to be stable. That means that when multiple records have the same "
                           "key, their original order is preserved.")
    s, e = span_of(WITH, "It is good practice to use the with keyword when dealing with file objects.")
    a, b = compose(WITH, s, e)
    assert WITH[a:b].endswith("after its suite finishes.")  # one sentence more, not the rest of the paragraph


def test_a_sentence_that_leans_back_gets_the_one_before() -> None:
    s, e = span_of(STABLE, "That means that when multiple records have the same key, their original order is "
                           "preserved.")
    a, b = compose(STABLE, s, e)
    assert STABLE[a:b].startswith("Sorts are guaranteed") and b == e


def test_nothing_is_added_across_paragraphs_or_over_another_quote() -> None:
    s, e = span_of(STABLE, "The sort routines use < when making comparisons.")
    assert compose(STABLE, s, e) == (s, e)  # first of its paragraph: nothing before
    s, e = span_of(STABLE, "Sorts are guaranteed to be stable.")
    nxt = span_of(STABLE, "That means that when multiple records have the same key, their original order is preserved.")
    assert compose(STABLE, s, e, taken=[nxt]) == (s, e)  # already its own quote


def test_a_colon_takes_the_code_it_introduces() -> None:
    s, e = span_of(VENV, "To create a virtual environment, run the venv module as a script with the directory path::")
    a, b = compose(VENV, s, e)
    assert VENV[a:b].endswith("python3 -m venv tutorial-env")
    assert spoken(VENV[a:b]).splitlines() == [VENV[s:e], "python3 -m venv tutorial-env"]
    prose = VENV.replace("python3 -m venv tutorial-env", "This is a sentence of prose, not code at all.")
    s, e = span_of(prose, "To create a virtual environment, run the venv module as a script with the directory path::")
    assert compose(prose, s, e) == (s, e)
    long = VENV.replace("python3 -m venv tutorial-env", "x = 1\n   " * (MAX_BLOCK_CHARS // 8))
    s, e = span_of(long, "To create a virtual environment, run the venv module as a script with the directory path::")
    assert compose(long, s, e) == (s, e)


def test_a_directive_line_and_its_code_come_together() -> None:
    text = ("CPython must then be configured with the --with-dtrace option:\n\n.. code-block:: none\n\n"
            "   checking for --with-dtrace... yes\n\nOn macOS, list the probes.")
    s, e = span_of(text, "CPython must then be configured with the --with-dtrace option:")
    a, b = compose(text, s, e)
    assert text[a:b].endswith("checking for --with-dtrace... yes")


def test_the_answer_quotes_the_composed_span_with_exact_offsets() -> None:
    doc = Document("sort.txt", STABLE, "sha", "Sorting")
    hit = Hit(1, 1.0, "sort.txt", 0, len(STABLE), STABLE, (), None, ("c",), None, None)

    def embed(texts):  # noqa: ANN001, ANN202  the question and the first sentence point the same way
        return np.array([[1.0, 0.0] if t.startswith(("Sorts", "Is")) else [0.6, 0.8] for t in texts], np.float32)

    q = "Is the sort stable?"
    args = (q, [hit], {"sort.txt": STABLE}, {"sort.txt": doc})
    on = ExtractiveAnswerer(embed, threshold=0.5, max_sentences=1).answer(*args)
    off = ExtractiveAnswerer(embed, threshold=0.5, max_sentences=1, scoring=Scoring(compose=False)).answer(*args)
    assert [c.quote for c in off.citations] == ["Sorts are guaranteed to be stable."]
    (c,) = on.citations
    assert STABLE[c.start:c.end] == c.quote and c.quote.endswith("original order is preserved.")
    assert on.text == " ".join(c.quote.split()) + " [1]"
    streamed = list(ExtractiveAnswerer(embed, threshold=0.5, max_sentences=1).stream(*args))
    assert "".join(p for p in streamed if isinstance(p, str)) == on.text


def test_streaming_keeps_the_line_breaks_of_quoted_code() -> None:
    doc = Document("venv.txt", VENV, "sha", "venv")
    hit = Hit(1, 1.0, "venv.txt", 0, len(VENV), VENV, (), None, ("c",), None, None)

    def embed(texts):  # noqa: ANN001, ANN202
        return np.array([[1.0, 0.0] if re.match(r"To create|How", t) else [0.0, 1.0] for t in texts], np.float32)

    args = ("How do I create a virtual environment?", [hit], {"venv.txt": VENV}, {"venv.txt": doc})
    ans = ExtractiveAnswerer(embed, threshold=0.5).answer(*args)
    assert ans.text.endswith("::\npython3 -m venv tutorial-env [1]")
    streamed = list(ExtractiveAnswerer(embed, threshold=0.5).stream(*args))
    assert "".join(p for p in streamed if isinstance(p, str)) == ans.text


def test_a_passage_cut_at_the_colon_still_quotes_the_code_and_grows_to_hold_it() -> None:
    doc = Document("venv.txt", VENV, "sha", "venv")
    cut = VENV.index("::") + 2
    hit = Hit(1, 1.0, "venv.txt", 0, cut, VENV[:cut], (), None, ("c",), None, None)

    def embed(texts):  # noqa: ANN001, ANN202
        return np.array([[1.0, 0.0] if re.match(r"To create|How", t) else [0.0, 1.0] for t in texts], np.float32)

    ans = ExtractiveAnswerer(embed, threshold=0.5).answer("How do I create a virtual environment?", [hit],
                                                          {"venv.txt": VENV}, {"venv.txt": doc})
    (c,) = ans.citations
    assert c.quote.endswith("tutorial-env") and VENV[c.start:c.end] == c.quote
    assert (c.passage_start, c.passage_end) == (0, c.end)


PASSWORD = ("When a password is specified in CREATE ROLE, this parameter determines the algorithm to use to "
            "encrypt the password. Possible values are scram-sha-256 and md5. The default is scram-sha-256.\n\n"
            "Note that older clients might lack support for SCRAM.")
STATES_DEFAULT = re.compile(r"\bthe default is\b", re.I).search


def test_the_quote_reaches_on_to_the_sentence_that_holds_what_is_asked_for() -> None:
    s, e = span_of(PASSWORD, "When a password is specified in CREATE ROLE, this parameter determines the algorithm "
                             "to use to encrypt the password.")
    a, b = compose(PASSWORD, s, e, finish=STATES_DEFAULT)
    assert (a, PASSWORD[a:b]) == (s, PASSWORD[s:PASSWORD.index("\n")])  # three sentences, not the next paragraph
    assert compose(PASSWORD, s, e) == (s, e)  # nothing asked for: the sentence alone
    default = span_of(PASSWORD, "The default is scram-sha-256.")
    assert compose(PASSWORD, s, e, taken=[default], finish=STATES_DEFAULT) == (s, e)  # never over another quote
    far = PASSWORD.replace("md5.", "md5. Both are hashes. Neither is reversible.")
    s, e = span_of(far, "When a password is specified in CREATE ROLE, this parameter determines the algorithm "
                        "to use to encrypt the password.")
    assert compose(far, s, e, finish=STATES_DEFAULT) == (s, e)  # more than FINISH_REACH sentences on: not reached


def test_a_default_question_quotes_the_default_with_the_best_sentence() -> None:
    doc = Document("conf.txt", PASSWORD, "sha", "Settings")
    hit = Hit(1, 1.0, "conf.txt", 0, len(PASSWORD), PASSWORD, (), None, ("c",), None, None)

    def embed(texts):  # noqa: ANN001, ANN202  the question and the parameter's first sentence point the same way
        return np.array([[1.0, 0.0] if t.startswith(("When", "Which")) else [0.0, 1.0] for t in texts], np.float32)

    args = ([hit], {"conf.txt": PASSWORD}, {"conf.txt": doc})
    asked = ExtractiveAnswerer(embed, threshold=0.5).answer("Which algorithm encrypts a password by default?", *args)
    assert [c.quote.endswith("The default is scram-sha-256.") for c in asked.citations] == [True]
    plain = ExtractiveAnswerer(embed, threshold=0.5).answer("Which algorithm encrypts a password?", *args)
    assert [c.quote.endswith("encrypt the password.") for c in plain.citations] == [True]


_PIECES = ["Sorts are stable.", "That means the order is kept.", "Use this:", "x = 1;", "It is fast.",
           "The advantage is speed.", "\n\n", "\r\n\r\n", "\n", "  ", "::", "\n\n   code --flag\n\n"]


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=14), st.data())
def test_a_composed_quote_holds_its_sentence_and_stays_an_exact_span(pieces, data) -> None:
    from assistant.quotable import quotable_spans

    text = " ".join(pieces)
    spans = [(s, e) for _p, s, e in quotable_spans(text)]
    if not spans:
        return
    s, e = data.draw(st.sampled_from(spans))
    a, b = compose(text, s, e)
    assert 0 <= a <= s < e <= b <= len(text)
    assert b - a <= (e - s) + 2 * 600 + MAX_BLOCK_CHARS  # one sentence each way and one block, never more
    assert text[a:b].strip() == text[a:b]  # whole sentences and blocks, trimmed
    assert spoken(text[a:b])  # says something
