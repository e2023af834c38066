"""Answers from any OpenAI-compatible chat-completions endpoint, streamed, with every citation checked
against the passages that were sent. Standard library HTTP only; no environment proxies are used."""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .. import __version__
from ..errors import ConfigError, EndpointError
from ..records import Answer, Hit, Turn
from ..settings import Settings
from . import prompts
from .grounding import MARKER, MarkerRewriter, could_be_refusal, ground

STATUS_TIMEOUT = 2.0  # seconds status() waits for GET /models
CONNECT_TIMEOUT = 5.0  # a live endpoint accepts at once; a dead host should not cost llm_timeout
_MAX_DETAIL = 200  # characters of an error body quoted in a message


def format_passages(hits: Sequence[Hit]) -> str:
    """The numbered passage blocks of the prompt: passage n is hits[n - 1]."""
    blocks = []
    for n, hit in enumerate(hits, 1):
        path = prompts.HEADING_SEPARATOR.join(hit.headings)
        blocks.append(prompts.PASSAGE_FORMAT.format(
            n=n, source=hit.source, text=hit.text.strip(),
            headings=prompts.HEADINGS_FORMAT.format(path=path) if path else "",
            page=prompts.PAGE_FORMAT.format(page=hit.page) if hit.page is not None else ""))
    return prompts.PASSAGE_SEPARATOR.join(blocks)


def build_messages(question: str, hits: Sequence[Hit], history: Sequence[Turn] = ()) -> list[dict[str, str]]:
    """The chat messages sent for one question: system prompt, the last few answered turns (their
    citation markers stripped, as they name passages of another retrieval), then passages and question."""
    messages = [{"role": "system", "content": prompts.SYSTEM_PROMPT}]
    turns = [t for t in history if t.question.strip() and t.answer.strip()]
    for turn in turns[max(0, len(turns) - prompts.HISTORY_TURNS):]:
        messages.append({"role": "user", "content": turn.question.strip()})
        messages.append({"role": "assistant", "content": _without_markers(turn.answer)})
    messages.append({"role": "user", "content": prompts.USER_PROMPT.format(
        passages=format_passages(hits), question=question.strip())})
    return messages


def fallback_notice(error: EndpointError) -> str:
    """The notice to attach to the extractive answer shown instead of a failed LLM answer."""
    return prompts.FALLBACK_NOTICE.format(reason=str(error))


class LLMAnswerer:
    """Answers over `{llm_base_url}/chat/completions`. Every failure to get a complete reply is raised
    as EndpointError with a one-line message, so the caller can fall back to the extractive answer."""

    mode = "llm"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base_url = settings.llm_base_url.strip().rstrip("/")
        self._resolved_model = settings.llm_model.strip()
        self._https, self._host, self._port, self._path = False, "", 0, ""
        if self.base_url:
            parts = urlsplit(self.base_url)
            try:
                port = parts.port
            except ValueError:
                port = -1
            if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
                raise ConfigError(
                    f"llm_base_url: expected http(s)://host[:port]/path, got {settings.llm_base_url!r}")
            self._https = parts.scheme == "https"
            self._host = parts.hostname
            self._port = port or (443 if self._https else 80)
            self._path = parts.path.rstrip("/")

    @property
    def configured(self) -> bool:
        return bool(self.base_url)

    def status(self) -> str:
        """One line for the UI: not configured, ok: <model> at <base_url>, or unreachable: <reason>.
        Probes GET {base}/models with a short timeout; never raises."""
        if not self.configured:
            return "not configured"
        try:
            ids = self._models(STATUS_TIMEOUT)
        except _NoAnswer as exc:
            return f"unreachable: {exc.reason}"
        except Exception as exc:  # shown in the UI: it must never raise
            return f"unreachable: {_one_line(str(exc)) or type(exc).__name__}"
        configured = self.settings.llm_model.strip()
        model = configured or (ids[0] if ids else "the default model")
        line = f"ok: {model} at {self.base_url}"
        if configured and ids and configured not in ids and f"{configured}:latest" not in ids:
            line += " (not in the endpoint's model list)"
        return line

    def stream(self, question: str, hits: Sequence[Hit], history: Sequence[Turn] = (),
               doc_texts: Mapping[str, str] | None = None) -> Iterator[str | Answer]:
        """Yield the answer text in pieces as it streams in, then one Answer (mode "llm").

        The pieces already have markers renumbered and invalid ones dropped, and a refusal is shown as
        ABSTAIN_TEXT; the final Answer.text is authoritative. Raises EndpointError when the endpoint
        cannot be reached, answers with an error, or fails part-way (pieces may have been yielded then:
        discard them)."""
        hits = tuple(hits)
        started = time.perf_counter()
        if not hits:  # nothing to answer from: no need to ask
            yield prompts.ABSTAIN_TEXT
            yield Answer(question, prompts.ABSTAIN_TEXT, (), True, hits, mode=self.mode)
            return
        if not self.configured:
            raise EndpointError("no LLM endpoint configured: set llm_base_url")
        reply = _Reply()
        rewriter = MarkerRewriter(len(hits))
        raw: list[str] = []
        held, deciding = "", True  # the reply's start is held back while it may be the refusal sentinel
        for piece in self._pieces(build_messages(question, hits, history), reply):
            raw.append(piece)
            if deciding:
                held += piece
                if could_be_refusal(held):
                    continue
                piece, held, deciding = held, "", False
            out = rewriter.feed(piece)
            if out:
                yield out
        llm_ms = (time.perf_counter() - started) * 1000
        text = "".join(raw)
        if not text.strip():
            raise EndpointError(f"LLM endpoint {self.base_url} returned an empty answer")

        grounded = ground(text, hits, doc_texts)
        if grounded.refused:
            if deciding:
                yield prompts.ABSTAIN_TEXT
        else:
            tail = rewriter.feed(held) + rewriter.finish()
            if tail:
                yield tail
        notices = [prompts.REMOVED_NOTICE.format(marker=m) for m in grounded.removed]
        notices += grounded.notices
        if not grounded.refused and not grounded.citations:
            notices.append(prompts.UNCITED_NOTICE)
        if reply.finish_reason == "length":
            notices.append(prompts.TRUNCATED_NOTICE)
        yield Answer(
            question=question, text=grounded.text, citations=grounded.citations, abstained=grounded.refused,
            hits=hits, mode=self.mode, notices=tuple(notices), unsupported=grounded.unsupported,
            timings_ms={"llm": llm_ms})

    def answer(self, question: str, hits: Sequence[Hit], history: Sequence[Turn] = (),
               doc_texts: Mapping[str, str] | None = None) -> Answer:
        """The final Answer of stream(); raises EndpointError like it."""
        for item in self.stream(question, hits, history, doc_texts):
            if isinstance(item, Answer):
                return item
        raise AssertionError("stream() ended without an Answer")

    # -- HTTP ------------------------------------------------------------------------------------

    def _pieces(self, messages: list[dict[str, str]], reply: _Reply) -> Iterator[str]:
        """The content pieces of one chat completion, streamed or not."""
        payload = {"model": self._model(), "messages": messages, "stream": True,
                   "temperature": prompts.TEMPERATURE}
        timeout = self.settings.llm_timeout
        try:
            conn, resp = self._open("POST", "/chat/completions", payload, timeout)
        except _NoAnswer as exc:
            raise EndpointError(f"LLM endpoint {self.base_url} unreachable: {exc.reason}") from None
        try:
            if resp.status != 200:
                raise EndpointError(
                    f"LLM endpoint {self.base_url} answered HTTP {resp.status}: {_detail(resp)}")
            yield from self._read(resp, reply, timeout)
        finally:
            conn.close()

    def _read(self, resp: http.client.HTTPResponse, reply: _Reply, timeout: float) -> Iterator[str]:
        """Server-sent events (`data: {...}` lines, then `data: [DONE]`), or one plain JSON completion."""
        answered = False
        try:
            for raw in iter(resp.readline, b""):
                line = raw.decode("utf-8").strip()
                if not line or line.startswith(":"):
                    continue
                if not line.startswith(("data:", "event:", "id:", "retry:")):
                    content = self._choice(json.loads(raw + resp.read()), reply, "message")
                    reply.finish_reason = reply.finish_reason or "stop"
                    if content:
                        yield content
                    return
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    reply.finish_reason = reply.finish_reason or "stop"
                    return
                content = self._choice(json.loads(data), reply, "delta")
                if content:
                    answered = True
                    yield content
        except TimeoutError:
            if answered:
                raise self._broken(f"no data for {timeout:g} s") from None
            raise EndpointError(
                f"LLM endpoint {self.base_url} unreachable: no answer within {timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._broken(_reason(exc, self._host)) from None
        except ValueError as exc:  # JSON or UTF-8 errors
            raise EndpointError(
                f"LLM endpoint {self.base_url} sent an unreadable reply: {_one_line(str(exc))}") from None
        if reply.finish_reason is None:
            raise self._broken("the connection closed before the answer was complete")

    def _choice(self, obj: Any, reply: _Reply, key: str) -> str:
        """The content of the first choice of a chunk ("delta") or a completion ("message")."""
        if not isinstance(obj, dict):
            raise ValueError("expected a JSON object")
        if obj.get("error"):
            raise EndpointError(f"LLM endpoint {self.base_url} answered with an error: {_error_text(obj)}")
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return ""  # e.g. a final usage-only chunk
        choice = choices[0]
        if choice.get("finish_reason"):
            reply.finish_reason = str(choice["finish_reason"])
        part = choice.get(key)
        content = part.get("content") if isinstance(part, dict) else None
        return content if isinstance(content, str) else ""

    def _broken(self, reason: str) -> EndpointError:
        return EndpointError(f"LLM endpoint {self.base_url} stopped mid-answer: {reason}")

    def _model(self) -> str:
        """The configured model, else the first the endpoint lists (servers that serve one model
        often ignore the name), else ""."""
        if not self._resolved_model:
            try:
                ids = self._models(STATUS_TIMEOUT)
            except Exception:
                ids = []  # the chat request itself will report what is wrong
            self._resolved_model = ids[0] if ids else ""
        return self._resolved_model

    def _models(self, timeout: float) -> list[str]:
        """The model ids of GET {base}/models; raises _NoAnswer."""
        conn, resp = self._open("GET", "/models", None, timeout)
        try:
            if resp.status != 200:
                raise _NoAnswer(f"{self._path}/models answered HTTP {resp.status}: {_detail(resp)}")
            try:
                data = json.loads(resp.read()).get("data") or []
            except TimeoutError:
                raise _NoAnswer(f"no answer within {timeout:g} s") from None
            except (OSError, http.client.HTTPException, ValueError, AttributeError):
                raise _NoAnswer(f"{self._path}/models sent an unreadable model list") from None
            return [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]
        finally:
            conn.close()

    def _open(self, method: str, path: str, payload: dict[str, Any] | None, timeout: float
              ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send one request and wait for the status line; raises _NoAnswer if none comes."""
        connect_timeout = min(CONNECT_TIMEOUT, timeout)
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=connect_timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=connect_timeout)
        headers = {"Accept": "text/event-stream, application/json", "User-Agent": f"assistant/{__version__}"}
        if self.settings.llm_api_key:
            headers["Authorization"] = f"Bearer {self.settings.llm_api_key}"
        body = None
        if payload is not None:
            body = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            try:
                conn.connect()
            except TimeoutError:
                raise _NoAnswer(f"no connection within {connect_timeout:g} s") from None
            assert conn.sock is not None
            conn.sock.settimeout(timeout)
            conn.request(method, self._path + path, body=body, headers=headers)
            return conn, conn.getresponse()
        except _NoAnswer:
            conn.close()
            raise
        except TimeoutError:
            conn.close()
            raise _NoAnswer(f"no answer within {timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise _NoAnswer(_reason(exc, self._host)) from None


@dataclass
class _Reply:
    finish_reason: str | None = None


class _NoAnswer(Exception):
    """No HTTP answer came back; `reason` completes "unreachable: ..."."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(exc: BaseException, host: str) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"unknown host {host}"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the connection closed without an answer"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, http.client.IncompleteRead):
        return "the connection closed before the answer was complete"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {_one_line(str(exc.reason or exc))}"
    if isinstance(exc, OSError) and exc.strerror:
        return _one_line(exc.strerror[:1].lower() + exc.strerror[1:])
    return _one_line(str(exc)) or type(exc).__name__


def _detail(resp: http.client.HTTPResponse) -> str:
    """The message of an error response, one line."""
    try:
        body = resp.read(4096)
    except (OSError, http.client.HTTPException):
        return resp.reason or "no details"
    try:
        text = _error_text(json.loads(body))
    except ValueError:
        text = body.decode("utf-8", "replace")
    return _one_line(text) or resp.reason or "no details"


def _error_text(obj: Any) -> str:
    """The message of an error object: OpenAI {"error": {"message": ...}}, Ollama {"error": "..."}."""
    if isinstance(obj, dict):
        error = obj.get("error", obj)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or json.dumps(error))
        if isinstance(error, str):
            return error
        return str(obj.get("message") or obj.get("detail") or json.dumps(obj))
    return str(obj)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL - 1] + "…"


def _without_markers(text: str) -> str:
    return re.sub(r"[ \t]*" + MARKER.pattern, "", text).strip()
