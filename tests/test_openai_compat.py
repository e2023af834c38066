"""The OpenAI-compatible chat endpoint against real servers, called with the real `openai` client (and raw
httpx for the wire format): answers with their sources, streaming as OpenAI's SSE, history, bad input, the
token, and streams cut off midway while the server keeps serving."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.openai_server import Reply
from tests.openai_server import serve as serve_llm
from tests.servers import QUESTION, TOKEN, hash_assistant, launched

pytestmark = [
    pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
FOLLOW_UP = "What is his expertise?"


@pytest.fixture(scope="module")
def real(articles_assistant) -> Iterator[str]:
    with launched(articles_assistant) as url:
        yield url


@pytest.fixture(scope="module")
def client(real: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{real}/v1", api_key="unused", max_retries=0, timeout=60)


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


@pytest.mark.slow
def test_a_completion_is_the_cited_answer_with_its_sources(client: openai.OpenAI, real: str,
                                                           articles_assistant) -> None:
    completion = client.chat.completions.create(model="assistant", messages=[_user(QUESTION)])
    ask = httpx.post(f"{real}/v1/ask", json={"question": QUESTION}, timeout=60).json()
    content = completion.choices[0].message.content
    assert completion.object == "chat.completion" and completion.choices[0].finish_reason == "stop"
    head, _, sources = content.partition("\n\nSources:\n")
    assert head == ask["answer"] and "[1]" in head
    citations = completion.model_extra["citations"]
    assert citations == ask["citations"] and completion.model_extra["abstained"] is False
    assert sources.splitlines() == [f"[{c['n']}] {c['source']} ({' > '.join(c['headings'][-2:])}) "
                                    f"{c['start']}-{c['end']}: \u201c{c['quote']}\u201d" for c in citations]
    for c in citations:
        assert articles_assistant.document_text(c["source"])[c["start"]:c["end"]] == c["quote"]
    assert completion.usage.completion_tokens > 20 and completion.usage.prompt_tokens > 3


@pytest.mark.slow
def test_streaming_gives_the_same_reply_in_openai_chunks(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="assistant", messages=[_user(QUESTION)])
    chunks = list(client.chat.completions.create(model="assistant", messages=[_user(QUESTION)], stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content and len([c for c in chunks if c.choices]) >= 4
    last = [c for c in chunks if c.choices][-1]
    assert last.choices[0].finish_reason == "stop" and last.model_extra["citations"] == whole.model_extra["citations"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


@pytest.mark.slow
def test_the_wire_format_is_openais_server_sent_events(real: str) -> None:
    body = {"model": "assistant", "stream": True, "messages": [_user(QUESTION)]}
    with httpx.stream("POST", f"{real}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    for event in events[:-2]:
        assert event.startswith("data: ") and "\n" not in event
        assert json.loads(event[len("data: "):])["object"] == "chat.completion.chunk"


@pytest.mark.slow
def test_earlier_messages_are_the_history(client: openai.OpenAI, real: str) -> None:
    first = client.chat.completions.create(model="assistant", messages=[_user(QUESTION)])
    messages = [{"role": "system", "content": "You are helpful."}, _user(QUESTION),
                {"role": "assistant", "content": first.choices[0].message.content},
                {"role": "user", "content": [{"type": "text", "text": FOLLOW_UP}]}]
    follow = client.chat.completions.create(model="assistant-extractive", messages=messages)
    ask = httpx.post(f"{real}/v1/ask", timeout=60, json={"question": FOLLOW_UP, "history": [
        {"question": QUESTION, "answer": first.choices[0].message.content.partition("\n\nSources:\n")[0]}]}
    ).json()
    assert follow.choices[0].message.content.startswith(ask["answer"])
    assert any("user behavior analysis" in c["quote"] for c in follow.model_extra["citations"])


def test_models_and_bad_requests(tmp_path: Path) -> None:
    a = hash_assistant(tmp_path)
    with launched(a) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list()] == ["assistant", "assistant-extractive"]  # no LLM configured
        assert client.models.retrieve("assistant").id == "assistant"
        with pytest.raises(openai.NotFoundError, match="'gpt-4o' is not one of assistant, assistant-extractive"):
            client.chat.completions.create(model="gpt-4o", messages=[_user(QUESTION)])
        cases = [
            ([], {}, "messages: empty; the last message must be the user's question"),
            ([_user(QUESTION), {"role": "assistant", "content": "x"}], {}, "messages[1]: the last message must be"),
            ([_user("  ")], {}, "question: empty"),
            ([_user("x" * 4001)], {}, "question: 4,001 characters"),
            ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}], {},
             "messages[0].content[0]: only text parts are supported, got type 'image_url'"),
            ([_user(QUESTION)], {"k": 0}, "k: must be between 1 and 50"),
            ([_user(QUESTION)], {"k": 10_000}, "k: must be between 1 and 50"),
        ]
        for messages, extra, message in cases:
            with pytest.raises(openai.BadRequestError) as raised:
                client.chat.completions.create(model="assistant", messages=messages, extra_body=extra)
            assert raised.value.code == "invalid_input" and raised.value.body["message"].startswith(message)
        long = [m for _ in range(30) for m in (_user("Who is Alex Turner?"), {"role": "assistant", "content": "x"})]
        reply = client.chat.completions.create(model="assistant", messages=[*long, _user(QUESTION)])
        assert reply.model_extra["citations"]  # a long conversation keeps its last max_history_turns turns


def test_the_token_is_the_api_key(tmp_path: Path) -> None:
    a = hash_assistant(tmp_path, api_token=TOKEN)
    with launched(a) as url:
        good = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
        assert good.chat.completions.create(model="assistant", messages=[_user(QUESTION)]).choices
        bad = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError, match="wrong login or token"):
            bad.models.list()


def _cut(url: str, body: dict, after: int = 2) -> list[str]:
    """Start a stream, read `after` events, and hang up."""
    seen = []
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as r:
        for line in r.iter_lines():
            if line:
                seen.append(line)
            if len(seen) >= after:
                break
    return seen


def test_streams_cut_off_midway_leave_the_server_serving(tmp_path: Path) -> None:
    """LLM answers streamed and hung up on: while the server waits for the LLM, and between its pieces. The
    server goes on answering others meanwhile and afterwards, and every stream it finishes is whole."""
    pieces = ["Turner ", "is ", "a ", "veteran ", "from ", "Meta ", "[1]."] * 4
    with serve_llm(Reply(content=pieces, delay=0.5)) as llm:
        a = hash_assistant(tmp_path, llm_base_url=llm.base_url, llm_model="test-model", llm_timeout=10)
        with launched(a) as url:
            body = {"model": "assistant-llm", "stream": True, "messages": [_user(QUESTION)]}
            for _ in range(5):
                assert _cut(url, body, after=1)[0].startswith("data: {")  # the LLM has not answered yet
                started = time.monotonic()
                assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
                assert time.monotonic() - started < 0.4
            for _ in range(10):
                seen = _cut(url, body, after=4)  # among the LLM's pieces
                assert seen[-1] != "data: [DONE]" and "Turner" in "".join(seen)
            ok = httpx.post(f"{url}/v1/chat/completions", timeout=30,
                            json={"model": "assistant-extractive", "messages": [_user(QUESTION)]})
            assert ok.status_code == 200 and ok.json()["citations"]
            whole = _cut(url, body, after=10_000)
            assert whole[-1] == "data: [DONE]"
            text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content", "") for e in whole[:-1]
                           if json.loads(e[6:])["choices"])
            assert text.startswith("".join(pieces)[:40]) and "Sources:" in text
        assert len(llm.chat_requests) == 16
