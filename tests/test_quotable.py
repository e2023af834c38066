"""What an answer may quote: sentences of prose, and each row of a table as the loaders write one."""

from __future__ import annotations

import numpy as np

from assistant.answer.extractive import ExtractiveAnswerer
from assistant.quotable import is_row, is_statement, quotable_texts
from assistant.records import Document, Hit, Section
from assistant.sentences import row_spans

LIMITS = ("Table K.1. PostgreSQL Limitations\n\nItem | Upper Limit | Comment\ndatabase size | unlimited\n"
          "columns per table | 1,600 | further limited by tuple size\nfield size | 1 GB\n1 | 2\n\n"
          "Class 23 — Integrity Constraint Violation\n23505 | unique_violation\n23514 | check_violation\n\n"
          "The maximum number of columns for a table is further reduced as the tuple must fit in a page.")


def test_a_table_is_cut_into_its_rows_and_other_text_is_left_alone() -> None:
    start = LIMITS.index("Item")
    end = LIMITS.index("\n\nClass")
    rows = [LIMITS[a:b] for a, b in row_spans(LIMITS, start, end)]
    assert rows == ["Item | Upper Limit | Comment", "database size | unlimited",
                    "columns per table | 1,600 | further limited by tuple size", "field size | 1 GB", "1 | 2"]
    prose = LIMITS.rindex("The maximum")
    assert row_spans(LIMITS, prose, len(LIMITS)) == [(prose, len(LIMITS))]
    one = "Use ps aux | grep postgres to see the processes.\nThen stop them."
    assert row_spans(one, 0, len(one)) == [(0, len(one))]  # one line with a cell separator is not a table


def test_rows_with_a_word_in_them_are_quotable() -> None:
    for row in ("23505 | unique_violation", "field size | 1 GB", "number of databases | 4,294,950,911"):
        assert is_row(row) and is_statement(row), row
    for line in ("1 | 2", "a |  | b", "| ``x`` | meaning |", "Class 23 — Integrity Constraint Violation"):
        assert not is_statement(line), line


def test_the_index_and_the_answerer_cut_the_same_rows() -> None:
    doc = Document("limits.html", LIMITS, "sha", "Limits", sections=(Section(0, 1, "Appendix K. Limits"),))
    q = quotable_texts(doc)
    assert "field size | 1 GB" in q and "23505 | unique_violation" in q and "1 | 2" not in q
    assert not any("\n" in t and " | " in t for t in q)  # never a whole table as one quote
    ex = ExtractiveAnswerer(lambda ts: np.zeros((len(ts), 4), np.float32), threshold=0.3)
    hit = Hit(1, 1.0, "limits.html", 0, len(LIMITS), LIMITS, (), None, ("c",), None, None)
    assert [c.text for c in ex.candidates([hit], {"limits.html": LIMITS}, {"limits.html": doc})] == q


def test_a_row_is_quoted_with_exact_offsets() -> None:
    doc = Document("limits.html", LIMITS, "sha", "Limits", sections=(Section(0, 1, "Appendix K. Limits"),))
    hit = Hit(1, 1.0, "limits.html", 0, len(LIMITS), LIMITS, (), None, ("c",), None, None)

    def embed(texts):  # noqa: ANN001, ANN202  the question and the field size row point the same way
        return np.array([[1.0, 0.0] if t.startswith(("field", "How")) else [0.0, 1.0] for t in texts], np.float32)

    ans = ExtractiveAnswerer(embed, threshold=0.5).answer("How big can a field be?", [hit], {"limits.html": LIMITS},
                                                         {"limits.html": doc})
    (c,) = ans.citations
    assert c.quote == "field size | 1 GB" == LIMITS[c.start:c.end]
