"""A real OpenAI-compatible HTTP server for tests: replies are scripted per test, requests are recorded.

    with serve(lambda req: "TikTok hired Amazon staff [1].") as server:
        settings = Settings.load(env={}, llm_base_url=server.base_url, llm_model="test-model")
        ...
        assert "Question:" in server.chat_requests[-1].messages[-1]["content"]

It speaks GET /v1/models and POST /v1/chat/completions, streamed (server-sent events over chunked
HTTP/1.1, in the shape OpenAI sends) or as one JSON completion.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What the server answers to one chat request."""

    content: str | Sequence[str] = ""  # a string is streamed word by word; a sequence gives the pieces
    status: int = 200
    error: str = "scripted failure"  # the error message when status != 200
    json_only: bool = False  # answer with one JSON completion even when asked to stream
    cut: bool = False  # close the connection after the pieces, before the stream is finished
    delay: float = 0.0  # seconds to wait before answering
    piece_delay: float = 0.0  # seconds to wait before each streamed piece
    finish_reason: str = "stop"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None = None

    @property
    def messages(self) -> list[dict[str, str]]:
        return list((self.body or {}).get("messages", []))


Script = Callable[[Request], "Reply | str | Sequence[str]"]


@dataclass
class OpenAIServer:
    script: Script | Reply | str
    models: tuple[str, ...] = ("test-model",)
    api_key: str = ""  # when set, requests without "Authorization: Bearer <api_key>" get 401
    requests: list[Request] = field(default_factory=list)
    base_url: str = ""

    @property
    def chat_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def reply_to(self, request: Request) -> Reply:
        reply = self.script(request) if callable(self.script) else self.script
        return reply if isinstance(reply, Reply) else Reply(content=reply)


@contextmanager
def serve(script: Script | Reply | str, *, models: Sequence[str] = ("test-model",),
          api_key: str = "") -> Iterator[OpenAIServer]:
    """Run an OpenAIServer on 127.0.0.1 (a free port) in a thread for the duration of the block."""
    state = OpenAIServer(script, tuple(models), api_key)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            request = self._record(None)
            if not self._authorized(request):
                return
            if self.path == "/v1/models":
                self._json(200, {"object": "list", "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "tests"} for m in state.models]})
            else:
                self._json(404, _error(f"no route {self.path}", "not_found"))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            request = self._record(body)
            if not self._authorized(request):
                return
            if self.path != "/v1/chat/completions" or body is None:
                self._json(404, _error(f"no route {self.path}", "not_found"))
                return
            reply = state.reply_to(request)
            if reply.delay:
                time.sleep(reply.delay)
            if reply.status != 200:
                self._json(reply.status, _error(reply.error, "server_error"))
            elif body.get("stream") and not reply.json_only:
                self._stream(reply, str(body.get("model", "")))
            else:
                self._complete(reply, str(body.get("model", "")))

        def _record(self, body: dict[str, Any] | None) -> Request:
            request = Request(self.command, self.path, dict(self.headers.items()), body)
            with lock:
                state.requests.append(request)
            return request

        def _authorized(self, request: Request) -> bool:
            if state.api_key and request.headers.get("Authorization") != f"Bearer {state.api_key}":
                self._json(401, _error("Incorrect API key provided", "invalid_request_error"))
                return False
            return True

        def _json(self, status: int, obj: dict[str, Any]) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _complete(self, reply: Reply, model: str) -> None:
            content = reply.content if isinstance(reply.content, str) else "".join(reply.content)
            self._json(200, {
                "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [{
                    "index": 0, "message": {"role": "assistant", "content": content},
                    "finish_reason": reply.finish_reason}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

        def _stream(self, reply: Reply, model: str) -> None:
            pieces = _pieces(reply.content)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            head = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model}
            self._event({**head, "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
            for piece in pieces:
                if reply.piece_delay:
                    time.sleep(reply.piece_delay)
                self._event({**head, "choices": [
                    {"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            if reply.cut:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self._event({**head, "choices": [
                {"index": 0, "delta": {}, "finish_reason": reply.finish_reason}]})
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")

        def _event(self, obj: dict[str, Any]) -> None:
            self._chunk(f"data: {json.dumps(obj)}\n\n".encode())

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # clients that time out and hang up are part of the tests

    server = Server(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening (just released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pieces(content: str | Sequence[str]) -> list[str]:
    if isinstance(content, str):
        return re.findall(r"\s*\S+", content) or [content]
    return list(content)


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}
