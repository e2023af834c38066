"""What `launch()` adds around the Gradio server: a private temp folder per server (uploads never land in the
machine-wide /tmp/gradio, and go when the server closes), a login check in front of every route that acts
or reveals, and logins compared in constant time and throttled per client address."""

from __future__ import annotations

import atexit
import hashlib
import hmac
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import gradio.utils
from gradio.context import LocalContext
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

LOGIN_MAX_FAILURES = 5  # login attempts one client address may fail within LOGIN_WINDOW_S ...
LOGIN_WINDOW_S = 60.0
LOGIN_COOLDOWN_S = 60.0  # ... before its logins are answered 429 for this long

# Reachable without a login (GET/HEAD): the login page, its assets, and routes that neither act nor reveal.
PUBLIC_PATHS = frozenset({"/", "/favicon.ico", "/theme.css", "/gradio_api/theme.css", "/manifest.json",
                          "/robots.txt", "/logout"})
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon")
LOGIN_PATHS = frozenset({"/login", "/login/"})
# Gradio's launch() calls this itself, without a cookie, to start the queue; once done it only answers false.
STARTUP_PATH = "/gradio_api/startup-events"

_original_upload_folder = gradio.utils.get_upload_folder
_building: ContextVar[str | None] = ContextVar("assistant_ui_building", default=None)
_folders: weakref.WeakKeyDictionary[gr.Blocks, str] = weakref.WeakKeyDictionary()  # demo -> its temp folder
_active: set[Path] = set()  # every private temp folder of this process not yet removed
_lock = threading.Lock()


class ServerGuard:
    """One server's private temp folder, login check and login throttle. `launch()` uses it so:

        guard = ServerGuard(user, password)
        with guard.building():
            demo = guard.attach(build_ui(...))
            demo.launch(auth=guard.auth, app_kwargs=guard.app_kwargs(), ...)

    after which `demo.close()` also deletes the folder (as does interpreter exit, as a last resort)."""

    def __init__(self, user: str = "", password: str = "") -> None:
        _install_upload_folder_hook()
        self.temp_dir = Path(tempfile.mkdtemp(prefix="assistant-ui-")).resolve()
        self.temp_dir.chmod(0o700)  # mkdtemp already does; say it, since privacy is the point
        with _lock:
            _active.add(self.temp_dir)
        self.auth: Callable[[str, str], bool] | None = check_login(user, password) if user else None
        self.throttle = LoginThrottle()
        self.delegated: tuple[str, ...] = ()
        self._gradio_close: Callable[..., None] | None = None
        atexit.register(self._remove_temp_dir)

    @contextmanager
    def building(self) -> Iterator[None]:
        """Gradio objects made inside (the Blocks and its components, the server app) keep their files in
        this server's temp folder: they read the upload folder when they are constructed."""
        token = _building.set(str(self.temp_dir))
        try:
            yield
        finally:
            _building.reset(token)

    def attach(self, demo: gr.Blocks) -> gr.Blocks:
        """Tie `demo` to this guard: its requests use the temp folder, and `demo.close()` removes it."""
        with _lock:
            _folders[demo] = str(self.temp_dir)
        self._gradio_close = demo.close
        demo.close = self.close  # type: ignore[method-assign]
        return demo

    def delegate(self, *paths: str) -> None:
        """Let requests for `paths` (exact, or every path below one that ends in "/") through to their routes,
        which check the same login themselves, also as HTTP basic or a bearer token (assistant/api/auth.py)."""
        self.delegated += paths

    def app_kwargs(self) -> dict[str, Any]:
        """For `Blocks.launch(app_kwargs=...)`: the middleware has to be there before the first request."""
        return {"middleware": [Middleware(_GuardMiddleware, guard=self)]}

    def close(self, verbose: bool = True) -> None:
        """Gradio's close (frees the port), then delete the temp folder."""
        try:
            if self._gradio_close is not None:
                self._gradio_close(verbose)
        finally:
            self._remove_temp_dir()

    def _remove_temp_dir(self) -> None:
        atexit.unregister(self._remove_temp_dir)
        with _lock:
            _active.discard(self.temp_dir)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def temp_dir(demo: gr.Blocks) -> Path | None:
    """The private temp folder of a demo started by `launch()` (None for any other Blocks)."""
    folder = _folders.get(demo)
    return Path(folder) if folder else None


def discard_upload(path: str | os.PathLike[str]) -> bool:
    """Delete an uploaded temp copy once it has been read, so the server can no longer hand it out. Only a
    file inside a private server temp folder of this process is deleted, never anything else; returns
    whether one was."""
    real = Path(os.path.realpath(path))
    with _lock:
        folder = next((f for f in _active if real != f and real.is_relative_to(f)), None)
    if folder is None or not real.is_file():
        return False
    try:
        real.unlink()
    except FileNotFoundError:
        return False
    # Gradio keeps each upload in a folder named after its content hash; drop that too once it is empty.
    if real.parent != folder:
        with suppress(OSError):
            real.parent.rmdir()
    return True


def check_login(user: str, password: str) -> Callable[[str, str], bool]:
    """Gradio's `auth` callable for one account. Both fields are always compared, as equal-length digests
    with hmac.compare_digest, so the time taken says nothing about either. (Gradio strips the username.)"""
    want_user, want_password = _digest(user.strip()), _digest(password)

    def check(username: str, given: str) -> bool:
        user_ok = hmac.compare_digest(_digest(username), want_user)
        password_ok = hmac.compare_digest(_digest(given), want_password)
        return user_ok & password_ok

    return check


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


@dataclass
class _Record:
    attempts: list[float] = field(default_factory=list)
    blocked_until: float = 0.0


class LoginThrottle:
    """Per client address: once `max_failures` logins within `window_s` have not succeeded, further logins
    are refused for `cooldown_s`. An attempt counts as failed from the moment it starts, so many wrong
    passwords sent at once cannot slip past the limit; a successful login wipes the address's record.
    Defaults are the module constants as they are when the throttle is made."""

    MAX_RECORDS = 10_000

    def __init__(self, max_failures: int | None = None, window_s: float | None = None,
                 cooldown_s: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = LOGIN_MAX_FAILURES if max_failures is None else max_failures
        self.window_s = LOGIN_WINDOW_S if window_s is None else window_s
        self.cooldown_s = LOGIN_COOLDOWN_S if cooldown_s is None else cooldown_s
        self.clock = clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def attempt(self, client: str) -> float:
        """Count a login attempt from `client`: 0 if it may go ahead, else the seconds until it may retry."""
        with self._lock:
            now = self.clock()
            record = self._records.setdefault(client, _Record())
            if record.blocked_until > now:
                return record.blocked_until - now
            record.attempts = [t for t in record.attempts if now - t < self.window_s]
            if len(record.attempts) >= self.max_failures:
                record.attempts.clear()
                record.blocked_until = now + self.cooldown_s
                return self.cooldown_s
            record.attempts.append(now)
            if len(self._records) > self.MAX_RECORDS:
                self._forget_stale(now)
            return 0.0

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._records.pop(client, None)

    def _forget_stale(self, now: float) -> None:
        stale = [c for c, r in self._records.items()
                 if r.blocked_until <= now and all(now - t >= self.window_s for t in r.attempts)]
        for client in stale:
            del self._records[client]


class _GuardMiddleware:
    """ASGI middleware in front of Gradio's routes. With a login configured, a request without a valid
    login cookie reaches only the login page and its assets; the rest (including routes Gradio leaves open,
    such as /gradio_api/cancel and /gradio_api/heartbeat) get 401. POST /login is throttled per client."""

    def __init__(self, app: ASGIApp, guard: ServerGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("app")  # Gradio's App: Starlette puts itself in the scope
        if scope["type"] not in ("http", "websocket") or getattr(server, "auth", None) is None:
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        method = scope.get("method", "")
        if scope["type"] == "http" and method == "POST" and path in LOGIN_PATHS:
            await self._login(scope, receive, send)
        elif (_is_public(method, path, server) or _is_delegated(path, self.guard.delegated)
              or logged_in_user(scope, server) is not None):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await WebSocketClose(code=1008)(scope, receive, send)
        else:
            blocks = getattr(server, "blocks", None)
            detail = {"error": "Not authenticated", "auth_message": getattr(blocks, "auth_message", None)}
            await JSONResponse({"detail": detail}, status_code=401)(scope, receive, send)

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        address = client[0] if client else ""
        wait = self.guard.throttle.attempt(address)
        if wait > 0:
            seconds = math.ceil(wait)
            response = JSONResponse({"detail": f"Too many failed logins; try again in {seconds} s."},
                                    status_code=429, headers={"Retry-After": str(seconds)})
            await response(scope, receive, send)
            return
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_noting_status)
        if status == 200:
            self.guard.throttle.succeeded(address)


def _route_path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root = scope.get("root_path", "")
    return (path[len(root):] or "/") if root and path.startswith(root) else path


def _is_public(method: str, path: str, server: Any) -> bool:
    if method not in ("GET", "HEAD"):
        return False
    if path == STARTUP_PATH:
        return not getattr(server, "startup_events_triggered", True)
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _is_delegated(path: str, delegated: tuple[str, ...]) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in delegated)


def logged_in_user(scope: Scope, server: Any) -> str | None:
    """The logged-in user, read from the cookie exactly as Gradio's own login check reads it."""
    cookies = HTTPConnection(scope).cookies
    token = (cookies.get(f"access-token-{server.cookie_id}")
             or cookies.get(f"access-token-unsecure-{server.cookie_id}"))
    return server.tokens.get(token) if token else None


def _upload_folder() -> str:
    """Gradio's get_upload_folder, made per server. Gradio reads the upload folder (GRADIO_TEMP_DIR, else
    /tmp/gradio) when a component or the server app is constructed, and again on every request when it
    checks that an input file is an upload; the environment variable is one per process, so it cannot tell
    two servers apart. Inside a request: the folder of the Blocks serving it; while building: the folder of
    the server being built; otherwise Gradio's answer."""
    blocks = LocalContext.blocks.get(None)
    folder = _folders.get(blocks) if blocks is not None else None
    return folder or _building.get() or _original_upload_folder()


def _install_upload_folder_hook() -> None:
    """Point every already-imported gradio module's get_upload_folder at `_upload_folder` (most import the
    name itself, so patching gradio.utils alone is not enough; modules imported later pick up the patch)."""
    with _lock:
        for name, module in list(sys.modules.items()):
            if ((name == "gradio" or name.startswith("gradio."))
                    and getattr(module, "get_upload_folder", None) is _original_upload_folder):
                module.get_upload_folder = _upload_folder  # type: ignore[attr-defined]


@contextmanager
def sigterm_exits() -> Iterator[None]:
    """Within the block, SIGTERM raises SystemExit, so `finally` clauses (closing the server and removing
    its temp folder) run; the default action would end the process without them. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
