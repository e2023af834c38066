"""OpenAI-compatible chat completions, so any OpenAI-speaking chat client can use the assistant as a "model":
the last user message is the question, earlier user/assistant pairs are the history, and the reply is the
cited answer with its sources listed after it. The structured citations travel in the extra fields
`citations` and `abstained`. Streaming follows OpenAI's server-sent events: `data: {chunk}` lines, then
`data: [DONE]`."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import APIRouter
from starlette.responses import JSONResponse, StreamingResponse

from .. import validate
from ..errors import AssistantError, InputError
from ..jsonable import citation_dict
from ..records import Answer, Citation, Turn
from . import schemas
from .errors import ApiError, from_library
from .rest import ERRORS, check_ready

if TYPE_CHECKING:
    from ..app import Assistant

MODEL_MODES = {"assistant": None, "assistant-extractive": "extractive", "assistant-llm": "llm"}
SOURCES_HEADING = "Sources:"
TEXT_PARTS = ("text", "input_text")


def router(a: Assistant) -> APIRouter:
    r = APIRouter()

    @r.get("/v1/models", tags=["openai"], summary="The models (answer modes) a chat client can pick")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [_model(m) for m in available_models(a)]}

    @r.get("/v1/models/{model}", tags=["openai"], summary="One model",
           responses={404: {"model": schemas.ErrorBody}})
    def model(model: str) -> dict[str, Any]:
        if model not in available_models(a):
            raise _unknown_model(a, model)
        return _model(model)

    @r.post("/v1/chat/completions", response_model=None, tags=["openai"], summary="OpenAI-compatible chat",
            responses={**ERRORS, 404: {"model": schemas.ErrorBody, "description": "Unknown model."}},
            description="The last user message is the question, earlier user/assistant pairs the history (the "
                        "last max_history_turns are used). The reply is the cited answer followed by its sources; "
                        "the extra fields `citations` (as in /v1/ask: quote == text[start:end] of the source's "
                        "loaded text) and `abstained` carry them structured (in the last chunk when streaming). "
                        "With `stream`, OpenAI's server-sent events: `data: {chunk}` per delta, then "
                        "`data: [DONE]`.")
    async def chat_completions(body: schemas.ChatRequest) -> Any:
        if body.model not in available_models(a):
            raise _unknown_model(a, body.model)
        try:
            question, history = conversation(body.messages, a.settings.max_history_turns)
            s = a.settings
            validate.check_text(s, question)
            validate.check_history(s, history)
            validate.check_k(s, body.k)
        except AssistantError as e:
            raise from_library(e) from None
        check_ready(a)
        mode = MODEL_MODES[body.model]
        head = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": body.model}
        usage = bool(body.stream_options and body.stream_options.include_usage)
        if body.stream:
            return StreamingResponse(_events(a, question, history, body.k, mode, head, usage),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        answer = await anyio.to_thread.run_sync(lambda: a.ask(question, history=history, k=body.k, mode=mode))
        content = answer.text + reply_suffix(answer)
        return JSONResponse({
            **head, "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop",
                         "logprobs": None}],
            "usage": _usage(question, history, content), **_extra(answer)})

    return r


def available_models(a: Assistant) -> list[str]:
    llm = bool(a.settings.llm_base_url and a.settings.llm_model)
    return [m for m, mode in MODEL_MODES.items() if mode != "llm" or llm]


def conversation(messages: Sequence[schemas.ChatMessage], max_turns: int) -> tuple[str, list[Turn]]:
    """(question, history) from chat messages: the last message must be the user's; each earlier user message
    pairs with the assistant message after it. System, developer and tool messages are not used. Only the
    last `max_turns` turns are kept, as the web chat does."""
    if not messages:
        raise InputError("messages: empty; the last message must be the user's question")
    last = messages[-1]
    if last.role != "user":
        raise InputError(f"messages[{len(messages) - 1}]: the last message must be the user's question (role "
                         f"user), got role {last.role!r}"[:200])
    turns: list[Turn] = []
    pending: str | None = None
    for i, m in enumerate(messages):
        if m.role == "user":
            if pending is not None:
                turns.append(Turn(pending, ""))
            pending = _text(m, i)
        elif m.role == "assistant" and pending is not None:
            turns.append(Turn(pending, strip_suffix(_text(m, i))))
            pending = None
    assert pending is not None
    return pending, turns[-max_turns:]


def reply_suffix(answer: Answer) -> str:
    """What follows the answer text in a reply: its notices, then its sources, one line each."""
    parts = []
    if answer.notices:
        parts.append("\n".join(f"Note: {n}" for n in answer.notices))
    if answer.citations:
        parts.append(SOURCES_HEADING + "\n" + "\n".join(source_line(c) for c in answer.citations))
    return "".join("\n\n" + p for p in parts)


def source_line(c: Citation) -> str:
    where = " > ".join(c.headings[-2:])
    page = f", page {c.page}" if c.page else ""
    return f"[{c.n}] {c.source}{page}{f' ({where})' if where else ''} {c.start}-{c.end}: \u201c{c.quote}\u201d"


def strip_suffix(text: str) -> str:
    """An earlier reply of ours without its notes and sources, as history."""
    for marker in ("\n\nNote: ", f"\n\n{SOURCES_HEADING}\n["):
        cut = text.find(marker)
        if cut >= 0:
            text = text[:cut]
    return text


async def _events(a: Assistant, question: str, history: list[Turn], k: int | None, mode: str | None,
                  head: dict[str, Any], include_usage: bool) -> AsyncIterator[str]:
    """The answer as OpenAI chunks. ask_stream runs in a worker thread one step at a time; if the client goes
    away, the stream is cancelled between steps and the generator closed (an LLM request it has open with it)."""
    chunk = {**head, "object": "chat.completion.chunk"}
    stream = a.ask_stream(question, history, k, mode)
    end = object()
    streamed: list[str] = []
    try:
        yield _sse({**chunk, "choices": [_choice({"role": "assistant", "content": ""})]})
        answer = None
        while (item := await anyio.to_thread.run_sync(next, stream, end)) is not end:
            if isinstance(item, Answer):
                answer = item
            elif item:
                streamed.append(item)
                yield _sse({**chunk, "choices": [_choice({"content": item})]})
        assert answer is not None
        suffix = reply_suffix(answer)
        if suffix:
            streamed.append(suffix)
            yield _sse({**chunk, "choices": [_choice({"content": suffix})]})
        yield _sse({**chunk, "choices": [_choice({}, "stop")], **_extra(answer)})
        if include_usage:
            yield _sse({**chunk, "choices": [], "usage": _usage(question, history, "".join(streamed))})
    except AssistantError as e:
        error = from_library(e)
        yield _sse({"error": {"code": error.code, "message": error.message}})
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(stream.close)
    yield "data: [DONE]\n\n"


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}\n\n"


def _choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}


def _extra(answer: Answer) -> dict[str, Any]:
    return {"citations": [citation_dict(c) for c in answer.citations], "abstained": answer.abstained}


def _usage(question: str, history: Sequence[Turn], reply: str) -> dict[str, int]:
    """Token counts in tiktoken's cl100k (the chunker's), for clients that show them."""
    from ..tokens import count

    prompt, completion = count([" ".join([*(f"{t.question} {t.answer}" for t in history), question]), reply])
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "assistant"}


def _unknown_model(a: Assistant, name: str) -> ApiError:
    return ApiError(404, "unknown_model", f"model: {name!r} is not one of {', '.join(available_models(a))}"[:300])


def _text(m: schemas.ChatMessage, i: int) -> str:
    if m.content is None or isinstance(m.content, str):
        return m.content or ""
    texts = []
    for j, part in enumerate(m.content):
        if part.type not in TEXT_PARTS:
            raise InputError(f"messages[{i}].content[{j}]: only text parts are supported, got type "
                             f"{part.type!r}"[:200])
        texts.append(part.text or "")
    return "\n".join(texts)
