"""Extractive answers with the real model: the five FAQ questions, abstention, exact quotes."""

from __future__ import annotations

import pytest

FAQ = [
    ("How will TikTok’s eCommerce initiative impact its users?",
     ["integrating shopping features seamlessly", "more convenient and engaging way"]),
    ("What expertise do the Amazon and Meta veterans bring to TikTok?",
     ["eCommerce operations and strategy", "user behavior analysis and personalized marketing"]),
    ("Will TikTok’s focus on eCommerce change its core entertainment value?",
     ["balance between entertainment and commerce", "retain its core appeal"]),
    ("How will TikTok address privacy concerns related to eCommerce?",
     ["prioritize user data protection"]),
    ("What impact will TikTok’s eCommerce entry have on the competition?",
     ["intensifying competition", "innovative approaches"]),
]


@pytest.mark.slow
@pytest.mark.parametrize(("question", "phrases"), FAQ)
def test_faq_questions_get_a_correct_cited_answer(articles_assistant, question, phrases) -> None:
    ans = articles_assistant.ask(question)
    assert not ans.abstained, ans.text
    assert ans.citations
    assert any(p in c.quote for c in ans.citations for p in phrases), ans.text
    for c in ans.citations:
        assert articles_assistant.document_text(c.source)[c.start:c.end] == c.quote
        assert f"[{c.n}]" in ans.text
        assert c.passage_start <= c.start < c.end <= c.passage_end


@pytest.mark.slow
@pytest.mark.parametrize("question", [
    "What is TikTok Shop's annual revenue?",
    "What is the capital of France?",
    "How do I configure a PostgreSQL replica?",
])
def test_questions_the_documents_cannot_answer_abstain(articles_assistant, question) -> None:
    ans = articles_assistant.ask(question)
    assert ans.abstained, ans.text
    assert ans.citations == ()
    assert "don't contain" in ans.text
    assert ans.hits, "the closest passages are still shown"


@pytest.mark.slow
def test_streaming_yields_the_same_text_as_the_answer(articles_assistant) -> None:
    from assistant.records import Answer

    events = list(articles_assistant.ask_stream("Who is Jane Williams?"))
    final = events[-1]
    assert isinstance(final, Answer)
    assert "".join(e for e in events[:-1] if isinstance(e, str)) == final.text
    assert "Jane Williams" in final.text
