"""The bound on a request body: larger than the input bounds allow is 413, refused before it is parsed."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings import Settings
from ..validate import HISTORY_ANSWER_FACTOR
from .errors import error_response

JSON_BYTES_PER_CHAR = 6  # a character escaped as \uXXXX
SLACK_BYTES = 64 * 1024  # field names, punctuation, a system prompt


def max_body_bytes(settings: Settings) -> int:
    """The largest body a request the validators accept can need: a question and a full history of questions
    and answers at their longest, every character escaped (5.4 MB with the default bounds)."""
    chars = settings.max_question_chars * (1 + settings.max_history_turns * (1 + HISTORY_ANSWER_FACTOR))
    return JSON_BYTES_PER_CHAR * chars + SLACK_BYTES


class BodyLimit:
    """ASGI middleware: reads the body (at most `limit` bytes) before the app sees it; a declared or actual
    size above the limit is answered 413 without reading the rest."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._too_large(scope, receive, send, declared)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(scope, receive, send, size, more=message.get("more_body", False))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # http.disconnect, for streaming responses

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, size: int, more: bool = False) -> None:
        what = f"more than {size:,}" if more else f"{size:,}"
        response = error_response(413, "too_large", f"request body: {what} bytes; the limit is {self.limit:,} "
                                  "(it follows max_question_chars and max_history_turns)", {"Connection": "close"})
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
