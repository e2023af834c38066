"""The HTTP APIs' login check, as ASGI middleware: the chat's login (its cookie, or HTTP basic with the same
user and password) or a bearer token (setting api_token, ASSISTANT_API_TOKEN). Failed attempts count in the
chat's login throttle, so the API is no way around it. A server on a loopback address also refuses requests
addressed to any other host name (DNS rebinding: a web page must not reach it under a name of its own)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import error_response

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Credentials:
    """What the API accepts. `login` checks a user and password (ui.server.check_login); `throttle` is a
    ui.server.LoginThrottle; `session_user` reads the chat's login cookie from a request."""

    login: Callable[[str, str], bool] | None = None
    token_digest: bytes = b""
    throttle: Any = None
    session_user: Callable[[Scope], str | None] | None = None

    @property
    def required(self) -> bool:
        return self.login is not None or bool(self.token_digest)

    @classmethod
    def of(cls, user: str = "", password: str = "", token: str = "", *, throttle: Any = None,
           login: Callable[[str, str], bool] | None = None,
           session_user: Callable[[Scope], str | None] | None = None) -> Credentials:
        """From the settings' auth_user, auth_password and api_token. The chat server passes its own login
        check and throttle (one throttle per server); otherwise new ones are made."""
        if not user and not token:
            return cls(session_user=session_user)
        from ..ui.server import LoginThrottle, check_login

        login = (login or check_login(user, password)) if user else None
        return cls(login, _digest(token) if token else b"", throttle or LoginThrottle(), session_user)

    def check(self, scope: Scope) -> str:
        """"ok", "missing" (no credentials given) or "wrong"."""
        if not self.required:
            return "ok"
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, value = header.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "basic" and value:
            user, password = _basic(value)
            return "ok" if self.login is not None and user is not None and self.login(user, password) else "wrong"
        if scheme == "bearer" and value:
            ok = bool(self.token_digest) and hmac.compare_digest(_digest(value), self.token_digest)
            return "ok" if ok else "wrong"
        if self.session_user is not None and self.session_user(scope) is not None:
            return "ok"
        return "wrong" if header else "missing"

    def challenge(self) -> str:
        schemes = ([] if self.login is None else ['Basic realm="assistant", charset="UTF-8"']) + \
                  ([] if not self.token_digest else ['Bearer realm="assistant"'])
        return ", ".join(schemes)


class ApiAuth:
    """ASGI middleware in front of the API app: 403 for a foreign Host on a loopback server, 401 without a
    valid login, 429 once an address has failed too often (the chat's throttle)."""

    def __init__(self, app: ASGIApp, credentials: Credentials, loopback_only: bool = False) -> None:
        self.app = app
        self.credentials = credentials
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if self.loopback_only and not _loopback_host(scope):
            await error_response(403, "forbidden_host", "this server answers requests to 127.0.0.1, localhost or "
                                 "[::1] only")(scope, receive, send)
            return
        creds = self.credentials
        verdict = creds.check(scope)
        if verdict == "missing":
            await self._refuse(scope, receive, send, "a login is required: HTTP basic with the chat's user and "
                               "password, or Authorization: Bearer <ASSISTANT_API_TOKEN>")
            return
        if creds.required:
            client = scope.get("client")
            address = client[0] if client else ""
            wait = creds.throttle.attempt(address)  # counted before the verdict is acted on, as the chat does
            if wait > 0:
                seconds = math.ceil(wait)
                await error_response(429, "rate_limited", f"too many failed logins; try again in {seconds} s",
                                     {"Retry-After": str(seconds)})(scope, receive, send)
                return
            if verdict == "ok":
                creds.throttle.succeeded(address)
            else:
                await self._refuse(scope, receive, send, "wrong login or token")
                return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, message: str) -> None:
        await error_response(401, "unauthorized", message,
                             {"WWW-Authenticate": self.credentials.challenge()})(scope, receive, send)


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_NAMES or host.startswith("127.")


def _loopback_host(scope: Scope) -> bool:
    host = Headers(scope=scope).get("host")
    if host is None:
        return True  # HTTP/1.0: no browser sends a request without Host
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]", 1)[0]
    return is_loopback(name.lower())


def _basic(value: str) -> tuple[str | None, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, ""
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, "")


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
