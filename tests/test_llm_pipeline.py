"""LLM mode through the whole Assistant (real retriever, real model, real HTTP server on loopback)."""

from __future__ import annotations

import pytest

from assistant.app import Assistant
from assistant.records import Answer

from .openai_server import Reply, free_port, serve


def _with(assistant: Assistant, **changes: object) -> Assistant:
    return Assistant(assistant.settings.replace(**changes), assistant.retriever)


@pytest.mark.slow
def test_llm_answer_is_streamed_and_its_citations_checked(articles_assistant) -> None:
    reply = "Jane Williams joined TikTok from Amazon [1]. She also runs a bakery [7]."
    with serve(reply) as server:
        a = _with(articles_assistant, llm_base_url=server.base_url, llm_model="test-model", mode="llm")
        events = list(a.ask_stream("Who joined TikTok from Amazon?"))
        prompt = server.chat_requests[-1].messages[-1]["content"]
    final = events[-1]
    assert isinstance(final, Answer) and final.mode == "llm"
    assert len([e for e in events if isinstance(e, str)]) > 1, "streamed in pieces"
    assert "[7]" not in final.text and any("[7]" in n for n in final.notices)
    assert "Who joined TikTok from Amazon?" in prompt and "[1]" in prompt
    for c in final.citations:
        assert a.document_text(c.source)[c.start:c.end] == c.quote


@pytest.mark.slow
def test_endpoint_down_falls_back_to_the_extractive_answer(articles_assistant) -> None:
    a = _with(articles_assistant, llm_base_url=f"http://127.0.0.1:{free_port()}/v1", llm_model="m",
              mode="llm", llm_timeout=5.0)
    ans = a.ask("How will TikTok address privacy concerns related to eCommerce?")
    assert ans.mode == "extractive" and ans.citations and not ans.abstained
    assert len(ans.notices) == 1 and "unreachable" in ans.notices[0] and "\n" not in ans.notices[0]
    assert a.llm_status().startswith("unreachable")


@pytest.mark.slow
def test_endpoint_error_falls_back_too(articles_assistant) -> None:
    with serve(Reply(status=500, error="model crashed")) as server:
        a = _with(articles_assistant, llm_base_url=server.base_url, llm_model="test-model", mode="llm")
        ans = a.ask("Who is Alex Turner?")
    assert ans.mode == "extractive" and "500" in ans.notices[0]
