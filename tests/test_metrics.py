"""The evaluation metrics on hand-made cases whose answers can be checked on paper."""

from __future__ import annotations

import math

import numpy as np
import pytest

from assistant.evaluate import metrics as m
from assistant.records import Answer, Citation, Hit

DOC_A = "Alpha one.  Beta\ntwo is here. Gamma three."
DOC_B = "Delta four. Epsilon five."
TEXTS = {"a.txt": DOC_A, "b.txt": DOC_B}


def hit(rank: int, source: str, start: int, end: int) -> Hit:
    return Hit(rank=rank, score=1.0 / rank, source=source, start=start, end=end, text=TEXTS[source][start:end])


def gold(sources: tuple[str, ...], quotes: tuple[str, ...], answer: str = "x", needs_all: bool = False) -> m.Gold:
    return m.Gold(answerable=True, sources=sources, quotes=quotes,
                  spans=m.gold_spans(sources, quotes, TEXTS.get), answer=answer, needs_all=needs_all)


UNANSWERABLE = m.Gold(answerable=False)
BETA = DOC_A.index("Beta")
BETA_END = DOC_A.index("here.") + len("here.")
DELTA_END = DOC_B.index("four.") + len("four.")


def answer(text: str = "", citations: tuple[Citation, ...] = (), abstained: bool = False) -> Answer:
    return Answer(question="q", text=text, citations=citations, abstained=abstained, hits=())


def cite(n: int, source: str, start: int, end: int, quote: str | None = None) -> Citation:
    return Citation(n=n, source=source, start=start, end=end,
                    quote=TEXTS[source][start:end] if quote is None else quote)


# --- locating gold ----------------------------------------------------------------------------------

def test_locate_matches_across_any_whitespace():
    assert m.locate("Beta two is here.", DOC_A) == [(BETA, BETA_END)]
    assert m.locate("one. Beta", DOC_A) == [(DOC_A.index("one."), DOC_A.index("Beta") + 4)]
    assert m.locate("Beta three", DOC_A) == []
    assert m.locate("   ", DOC_A) == []


def test_gold_spans_finds_each_quote_in_each_loaded_source():
    g = gold(("a.txt", "b.txt", "missing.txt"), ("Beta two is here.", "Delta four."))
    assert g.spans == (("a.txt", BETA, BETA_END), ("b.txt", 0, DELTA_END))
    assert g.evidence_sources == ("a.txt", "b.txt")


# --- retrieval --------------------------------------------------------------------------------------

def test_relevant_needs_gold_source_and_whole_quote_inside_the_span():
    g = gold(("a.txt",), ("Beta two is here.",))
    assert m.is_relevant(hit(1, "a.txt", 0, len(DOC_A)), g)
    assert m.is_relevant(hit(1, "a.txt", BETA, BETA_END), g)
    assert not m.is_relevant(hit(1, "a.txt", BETA + 1, len(DOC_A)), g)  # cuts the quote
    assert not m.is_relevant(hit(1, "b.txt", 0, len(DOC_B)), g)


def test_recall_hit1_mrr_ndcg_single_source():
    g = gold(("a.txt",), ("Beta two is here.",))
    hits = [hit(1, "b.txt", 0, 5), hit(2, "a.txt", 0, 5), hit(3, "a.txt", BETA, BETA_END),
            hit(4, "a.txt", 0, len(DOC_A))]
    assert m.recall_at_k([hits], [g], 2).per_question == (0.0,)
    assert m.recall_at_k([hits], [g], 3).value == 1.0
    assert m.hit_at_1([hits], [g]).value == 0.0
    assert m.mrr([hits], [g]).value == pytest.approx(1 / 3)
    assert m.mrr([hits], [g], k=2).value == 0.0
    # the second relevant hit of the same source earns nothing: ideal is one hit at rank 1
    assert m.ndcg_at_k([hits], [g], 10).value == pytest.approx(1 / math.log2(4))


def test_recall_counts_gold_sources_for_multi_document_questions():
    g = gold(("a.txt", "b.txt"), ("Beta two is here.", "Delta four."), needs_all=True)
    only_a = [hit(1, "a.txt", BETA, BETA_END), hit(2, "a.txt", 0, len(DOC_A))]
    both = [hit(1, "a.txt", BETA, BETA_END), hit(2, "a.txt", 0, 3), hit(3, "b.txt", 0, DELTA_END)]
    assert m.recall_at_k([only_a, both], [g, g], 10).per_question == (0.5, 1.0)
    assert m.recall_at_k([only_a, both], [g, g], 10).value == 0.75
    assert m.source_recall_at_k([only_a, both], [g, g], 10).per_question == (0.5, 1.0)
    ideal = 1 + 1 / math.log2(3)
    assert m.ndcg_at_k([both], [g], 10).value == pytest.approx((1 + 1 / math.log2(4)) / ideal)
    assert m.hit_at_1([both], [g]).value == 1.0


def test_any_one_gold_source_is_enough_without_needs_all():
    g = gold(("a.txt", "b.txt"), ("Beta two is here.", "Delta four."))
    only_b = [hit(1, "a.txt", 0, 3), hit(2, "b.txt", 0, DELTA_END), hit(3, "a.txt", BETA, BETA_END)]
    assert m.recall_at_k([only_b], [g], 1).value == 0.0
    assert m.recall_at_k([only_b], [g], 2).value == 1.0
    assert m.source_recall_at_k([only_b], [g], 1).value == 1.0
    assert m.ndcg_at_k([only_b], [g], 10).value == pytest.approx(1 / math.log2(3))  # ideal: one hit


def test_source_recall_ignores_quotes_and_quote_recall_ignores_sources():
    g = gold(("a.txt",), ("Beta two is here.",))
    wrong_part = [hit(1, "a.txt", 0, 5)]
    assert m.recall_at_k([wrong_part], [g], 1).value == 0.0
    assert m.source_recall_at_k([wrong_part], [g], 1).value == 1.0
    assert m.quote_recall_at_k([wrong_part], [g], 1).value == 0.0
    # whitespace in the hit text differs from the quote ("Beta\ntwo"): still found
    assert m.quote_recall_at_k([[hit(1, "a.txt", BETA, BETA_END)]], [g], 1).value == 1.0
    copied = Hit(rank=1, score=1.0, source="elsewhere.txt", start=0, end=99, text="x Beta  two is here. y")
    assert m.quote_recall_at_k([[copied]], [g], 1).value == 1.0
    assert m.recall_at_k([[copied]], [g], 1).value == 0.0


def test_retrieval_metrics_skip_unanswerable_and_unlocatable_questions():
    lost = m.Gold(answerable=True, sources=("a.txt",), quotes=("not in the text",), spans=())
    hits = [hit(1, "a.txt", 0, len(DOC_A))]
    for score in (m.recall_at_k([hits, hits], [UNANSWERABLE, lost], 5), m.hit_at_1([hits, hits], [UNANSWERABLE, lost]),
                  m.mrr([hits, hits], [UNANSWERABLE, lost]), m.ndcg_at_k([hits, hits], [UNANSWERABLE, lost])):
        assert score == m.Score(None, (None, None))
    assert m.quote_recall_at_k([hits, hits], [UNANSWERABLE, lost], 5).per_question == (None, 0.0)
    with pytest.raises(ValueError):
        m.recall_at_k([hits], [UNANSWERABLE, lost], 5)


# --- answers ----------------------------------------------------------------------------------------

def test_f1_uses_squad_normalisation_and_ignores_citation_markers():
    assert m.normalize_answer("The  Cat, sat!") == "cat sat"
    assert m.f1("The cat sat [1].", "a cat sat") == 1.0
    assert m.f1("cat sat on the mat", "cat sat") == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))
    assert m.f1("dog", "cat") == 0.0
    assert m.f1("", "") == 1.0
    assert m.f1("the", "cat") == 0.0


def test_token_f1_scores_abstentions_as_zero_and_skips_unanswerable():
    g = gold(("a.txt",), ("Beta two is here.",), answer="Jane Williams")
    score = m.token_f1([answer("Jane Williams [1]"), answer("I could not find it", abstained=True),
                        answer("Paris")], [g, g, UNANSWERABLE])
    assert score.per_question == (1.0, 0.0, None)
    assert score.value == 0.5


def test_quote_support_needs_an_overlapping_citation_in_the_same_source():
    g = gold(("a.txt",), ("Beta two is here.",))
    inside = answer("x", (cite(1, "a.txt", BETA + 5, BETA + 8),))
    touching = answer("x", (cite(1, "a.txt", 0, BETA),))  # ends where the gold span starts
    other_doc = answer("x", (cite(1, "b.txt", 0, DELTA_END),))
    abstained = answer("x", (cite(1, "a.txt", BETA, BETA_END),), abstained=True)
    score = m.quote_support([inside, touching, other_doc, abstained, answer("y")], [g] * 4 + [UNANSWERABLE])
    assert score.per_question == (1.0, 0.0, 0.0, 0.0, None)
    assert score.value == 0.25


def test_citation_precision_checks_the_quote_and_the_source():
    g = gold(("a.txt",), ("Beta two is here.",))
    good = cite(1, "a.txt", BETA, BETA_END)
    bad_quote = cite(2, "a.txt", BETA, BETA_END, quote="Beta two is here")
    off_gold = cite(3, "b.txt", 0, DELTA_END)
    unknown = Citation(n=4, source="gone.txt", start=0, end=5, quote="Alpha")
    out_of_range = Citation(n=5, source="a.txt", start=0, end=999, quote=DOC_A)
    answers = [answer("x", (good, bad_quote, off_gold, unknown, out_of_range)), answer("y"),
               answer("z", (off_gold,))]
    score = m.citation_precision(answers, [g, g, UNANSWERABLE], TEXTS)
    assert score.per_question == (0.2, None, 1.0)  # off-gold sources only count against answerable ones
    assert score.value == pytest.approx(2 / 6)
    assert m.citation_precision([answer("y")], [g], TEXTS).value is None


# --- abstention and latency -------------------------------------------------------------------------

def test_abstention_precision_recall_accuracy():
    abstained = [True, True, False, False, True]
    answerable = [False, True, False, True, False]
    s = m.abstention(abstained, answerable)
    assert s.counts == {"tp": 2, "fp": 1, "fn": 1, "tn": 1}
    assert s.precision.value == pytest.approx(2 / 3)
    assert s.recall.value == pytest.approx(2 / 3)
    assert s.accuracy.value == pytest.approx(3 / 5)
    assert s.accuracy.per_question == (1.0, 0.0, 0.0, 1.0, 1.0)
    assert s.precision.per_question == (1.0, 0.0, None, None, 1.0)
    assert s.recall.per_question == (1.0, None, 0.0, None, 1.0)
    none = m.abstention([False, False], [True, True])
    assert none.precision.value is None and none.recall.value is None and none.accuracy.value == 1.0


def test_false_abstention_is_the_share_of_answerable_questions_abstained_on():
    abstained = [True, True, False, False, True]
    answerable = [False, True, False, True, True]
    s = m.false_abstention(abstained, answerable)
    assert s.value == pytest.approx(2 / 3)
    assert s.per_question == (None, 1.0, None, 0.0, 1.0)
    assert m.false_abstention([True], [False]).value is None
    with pytest.raises(ValueError):
        m.false_abstention([True], [True, False])


def test_percentiles_match_numpy():
    values = [120.0, 5.0, 33.0, 47.5, 8.0, 1000.0, 61.0]
    for q in (0, 50, 95, 100):
        assert m.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    lat = m.latency(values)
    assert lat["p50"].value == 47.5
    assert lat["p95"].per_question == tuple(values)
    assert m.percentile([], 50) is None
