"""What a question asks for (a default, the definition of a term) and which sentences hold it."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.answer.extractive import ExtractiveAnswerer, Scoring, asked_for, gives
from assistant.records import Document, Hit


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

