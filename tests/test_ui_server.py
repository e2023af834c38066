"""The web chat's server hardening (assistant/ui/server.py), against real Gradio servers on free local ports:
each server's private temp folder, the login check in front of every route, and the login throttle."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from assistant.ui import server

pytestmark = [
    # Gradio's queue calls pandas APIs that pandas 3 deprecates; not ours to fix.
    pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

BAKERY = b"The Zephyr Bakery\n\nThe Zephyr Bakery in Troms\xc3\xb8 was founded by Ingrid Solberg in 1987.\n"
USER, PASSWORD = "reader", "s3cret-pass"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assistant(root: Path, embedder, **changes: object):
    """An Assistant over one small document, with its folders under `root`."""
    from assistant.app import Assistant
    from assistant.settings import Settings

    (root / "docs").mkdir(parents=True)
    (root / "docs" / "walrus.txt").write_text("The walrus counted forty-two pebbles on Tuesday.\n")
    settings = Settings.load(env={}, docs_dir=root / "docs", index_dir=root / "index").replace(**changes)
    return Assistant.open(settings, embedder=embedder)


@pytest.fixture
def start(tmp_path: Path, hash_embedder) -> Iterator[Callable[..., object]]:
    """Start real servers with launch(); every one is closed afterwards."""
    from assistant.ui.app import launch

    demos = []

    def _start(**changes: object) -> object:
        assistant = _assistant(tmp_path / f"server{len(demos)}", hash_embedder, **changes)
        demo = launch(assistant, host="127.0.0.1", port=_free_port(), block=False, quiet=True)
        demos.append(demo)
        return demo

    yield _start
    for demo in demos:
        demo.close(verbose=False)


def _client(demo) -> httpx.Client:
    return httpx.Client(base_url=demo.local_url.rstrip("/"), timeout=30)


def _upload(client: httpx.Client, name: str, data: bytes) -> httpx.Response:
    return client.post("/gradio_api/upload", files=[("files", (name, data, "text/plain"))])


def _login(client: httpx.Client, user: str = USER, password: str = PASSWORD) -> httpx.Response:
    return client.post("/login", data={"username": user, "password": password})


def _add_event(demo) -> int:
    """The fn_index of the "Add to the index" event: the one that reads the upload box (and the table's
    filter, status and sort, which _ADD_VIEW gives)."""
    return next(i for i, fn in demo.fns.items()
                if [getattr(b, "elem_id", None) for b in fn.inputs][:1] == ["upload"])


_ADD_VIEW = ["", "All", "Name"]


def _run_event(client: httpx.Client, fn_index: int, data: list) -> list:
    """Run one event through the queue as the browser does (join, then read the event stream)."""
    session = secrets.token_hex(6)
    client.post("/gradio_api/queue/join",
                json={"data": data, "fn_index": fn_index, "session_hash": session}).raise_for_status()
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                message = json.loads(line[len("data: "):])
                if message["msg"] == "process_completed":
                    assert message["success"], message
                    return message["output"]["data"]
    raise AssertionError("the event stream ended without a result")


def _file_data(path: str, name: str) -> dict:
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


# --- the private temp folder --------------------------------------------------------------------------------

def test_each_server_gets_its_own_private_temp_folder_and_close_deletes_it(start):
    first, second = start(), start()
    folders = [server.temp_dir(first), server.temp_dir(second)]
    assert folders[0] is not None and folders[1] is not None and folders[0] != folders[1]
    shared = Path(tempfile.gettempdir(), "gradio").resolve()
    for demo, folder in zip((first, second), folders, strict=True):
        assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert folder.name.startswith("assistant-ui-") and folder != shared
        assert Path(demo.app.uploaded_file_dir) == folder  # where /gradio_api/upload writes
        assert {Path(b.GRADIO_CACHE) for b in [demo, *demo.blocks.values()]} == {folder}
    first.close()
    assert not folders[0].exists() and folders[1].is_dir()
    second.close()
    second.close()  # a second close is harmless
    assert not folders[1].exists()


def test_uploads_land_in_their_servers_folder_and_are_accepted_as_inputs_there(start):
    """Gradio checks an input file against its upload folder on every request, so with two servers in one
    process each must still accept its own uploads."""
    demos = [start(), start()]
    for demo in demos:
        with _client(demo) as client:
            response = _upload(client, "zephyr.txt", BAKERY)
            assert response.status_code == 200
            path = Path(response.json()[0])
            assert path.parent.parent == server.temp_dir(demo) and path.read_bytes() == BAKERY
            assert client.get(f"/gradio_api/file={path}").content == BAKERY
            status = _run_event(client, _add_event(demo), [[_file_data(str(path), "zephyr.txt")], *_ADD_VIEW])[0]
            assert "Added zephyr.txt" in status, status


def test_discard_upload_deletes_only_files_inside_a_private_temp_folder(start, tmp_path: Path):
    demo = start()
    with _client(demo) as client:
        path = Path(_upload(client, "zephyr.txt", BAKERY).json()[0])
        outside = tmp_path / "mine.txt"
        outside.write_bytes(BAKERY)
        assert not server.discard_upload(outside) and outside.read_bytes() == BAKERY
        assert not server.discard_upload(path.parent)  # a folder, not a file
        assert not server.discard_upload(server.temp_dir(demo))
        link = server.temp_dir(demo) / "link.txt"
        link.symlink_to(outside)  # inside by name, outside in fact
        assert not server.discard_upload(link) and outside.exists()

        assert server.discard_upload(path)
        assert not path.exists() and not path.parent.exists()
        assert client.get(f"/gradio_api/file={path}").status_code == 403
        assert not server.discard_upload(path)


@pytest.fixture
def made_folders(monkeypatch) -> list[Path]:
    """The temp folders ServerGuard creates during the test."""
    made: list[Path] = []
    mkdtemp = tempfile.mkdtemp

    def recording(*args, **kwargs):
        made.append(Path(mkdtemp(*args, **kwargs)))
        return str(made[-1])

    monkeypatch.setattr(server.tempfile, "mkdtemp", recording)
    return made


def test_a_failed_launch_leaves_no_temp_folder(start, tmp_path: Path, hash_embedder, made_folders):
    from assistant.ui.app import launch

    busy = start()
    with pytest.raises(OSError):
        launch(_assistant(tmp_path / "late", hash_embedder), host="127.0.0.1", port=busy.server_port,
               block=False, quiet=True)
    assert len(made_folders) == 2 and made_folders[0].is_dir() and not made_folders[1].exists()


def test_launch_with_block_closes_the_server_and_deletes_its_folder_on_sigterm(tmp_path: Path, hash_embedder,
                                                                              made_folders):
    from assistant.ui.app import launch

    assistant = _assistant(tmp_path, hash_embedder)
    port = _free_port()
    default = signal.getsignal(signal.SIGTERM)

    def stop_once_blocking() -> None:
        deadline = time.monotonic() + 30
        while signal.getsignal(signal.SIGTERM) is default and time.monotonic() < deadline:
            time.sleep(0.05)
        # SIGTERM only once launch() handles it (its default would end pytest); else Ctrl+C, which it survives
        os.kill(os.getpid(), signal.SIGINT if signal.getsignal(signal.SIGTERM) is default else signal.SIGTERM)

    threading.Thread(target=stop_once_blocking, daemon=True).start()
    with pytest.raises(SystemExit) as exited:
        launch(assistant, host="127.0.0.1", port=port, block=True, quiet=True)
    assert exited.value.code == 128 + signal.SIGTERM
    assert len(made_folders) == 1 and not made_folders[0].exists()
    assert signal.getsignal(signal.SIGTERM) is default
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=5)


# --- the login check ----------------------------------------------------------------------------------------

@pytest.fixture
def guarded(start):
    return start(auth_user=USER, auth_password=PASSWORD)


def _protected_requests(uploaded: str) -> list[tuple[str, str, dict | None]]:
    body = {"session_hash": "s1", "fn_index": 0, "event_id": "e1"}
    return [
        ("POST", "/gradio_api/cancel", body),
        ("POST", "/gradio_api/reset", {"event_id": "e1"}),
        ("POST", "/gradio_api/upload", None),
        ("GET", f"/gradio_api/file={uploaded}", None),
        ("GET", f"/gradio_api/file/{uploaded}", None),
        ("POST", "/gradio_api/queue/join", {"data": [], "fn_index": 0, "session_hash": "s1"}),
        ("GET", "/gradio_api/queue/data?session_hash=s1", None),
        ("GET", "/gradio_api/queue/status", None),
        ("GET", "/gradio_api/heartbeat/s1", None),
        ("GET", "/gradio_api/startup-events", None),
        ("GET", "/gradio_api/app_id", None),
        ("POST", "/gradio_api/stream/e1/close", None),
        ("GET", "/gradio_api/upload_progress?upload_id=u1", None),
        ("GET", "/gradio_api/info", None),
        ("GET", "/config", None),
        ("POST", "/gradio_api/call/documents", {"data": []}),
        ("POST", "/gradio_api/run/documents", {"data": []}),
        ("GET", "/monitoring/key", None),
    ]


def _status(client: httpx.Client, method: str, path: str, body: dict | None) -> int:
    """The status only: streaming routes (heartbeat, queue data) would otherwise never end."""
    if path == "/gradio_api/upload":
        return _upload(client, "probe.txt", b"probe").status_code
    with client.stream(method, path, json=body) as response:
        return response.status_code


def test_without_the_login_cookie_every_route_that_acts_or_reveals_answers_401(guarded):
    with _client(guarded) as client:
        assert _login(client).status_code == 200
        uploaded = _upload(client, "zephyr.txt", BAKERY).json()[0]
        requests = _protected_requests(uploaded)
        with_cookie = {path: _status(client, method, path, body) for method, path, body in requests}
    with _client(guarded) as anonymous:
        without = {path: _status(anonymous, method, path, body) for method, path, body in requests}
    assert {path: code for path, code in without.items() if code != 401} == {}
    assert {path: code for path, code in with_cookie.items() if code in (401, 403, 429)} == {
        "/monitoring/key": 403}  # Gradio's own check of the monitoring key, once logged in


def test_with_the_login_cookie_the_app_works(guarded):
    with _client(guarded) as client:
        assert _login(client).status_code == 200
        path = _upload(client, "zephyr.txt", BAKERY).json()[0]
        assert client.get(f"/gradio_api/file={path}").content == BAKERY
        status = _run_event(client, _add_event(guarded), [[_file_data(path, "zephyr.txt")], *_ADD_VIEW])[0]
        assert "Added zephyr.txt" in status, status
        assert client.post("/gradio_api/cancel", json={"session_hash": "s1", "fn_index": 0,
                                                       "event_id": "e1"}).json() == {"success": True}


def test_the_login_page_and_its_assets_need_no_cookie(guarded):
    with _client(guarded) as client:
        page = client.get("/")
        assert page.status_code == 200 and '"auth_required":true' in page.text.replace(" ", "")
        assert client.head("/").status_code == 200
        asset = re.search(r'(?:\./)?(assets/[^"\']+\.js)', page.text)
        assert asset is not None and client.get(f"/{asset.group(1)}").status_code == 200
        for path in ("/theme.css", "/favicon.ico", "/static/js/iframeResizer.contentWindow.min.js"):
            assert client.get(path).status_code == 200, path
        assert client.get("/gradio_api/startup-events").status_code == 401  # launch() has already run it


def test_gradio_client_logs_in_and_calls_the_api(guarded):
    from gradio_client import Client

    client = Client(guarded.local_url, auth=(USER, PASSWORD), verbose=False)
    try:
        assert [d["source"] for d in client.predict(api_name="/documents")] == ["walrus.txt"]
    finally:
        client.close()


def test_without_a_login_configured_nothing_is_locked(start):
    demo = start()
    with _client(demo) as client:
        assert client.get("/config").status_code == 200
        assert client.post("/gradio_api/cancel", json={"session_hash": "s1", "fn_index": 0,
                                                       "event_id": "e1"}).status_code == 200


# --- login throttling and the credential check --------------------------------------------------------------

def test_a_sixth_wrong_login_is_refused_429_and_a_right_one_works_after_the_cooldown(start, monkeypatch):
    monkeypatch.setattr(server, "LOGIN_COOLDOWN_S", 1.5)
    demo = start(auth_user=USER, auth_password=PASSWORD)
    with _client(demo) as client:
        assert [_login(client, password=f"guess{i}").status_code for i in range(5)] == [400] * 5
        refused = _login(client, password="guess5")
        assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 2
        assert _login(client).status_code == 429  # even the right password, during the cooldown
        assert client.get("/config").status_code == 401
        time.sleep(1.6)
        assert _login(client).status_code == 200
        assert client.get("/config").status_code == 200


def test_a_right_login_clears_earlier_failures(guarded):
    with _client(guarded) as client:
        assert [_login(client, password="wrong").status_code for _ in range(4)] == [400] * 4
        assert _login(client).status_code == 200
        assert [_login(client, password="wrong").status_code for _ in range(5)] == [400] * 5
        assert _login(client, password="wrong").status_code == 429


def test_check_login_compares_both_fields_every_time(monkeypatch):
    check = server.check_login(USER, PASSWORD)
    assert check(USER, PASSWORD)
    assert not check(USER, "wrong") and not check("someone", PASSWORD) and not check("", "")
    assert not check(USER, PASSWORD + "x") and not check(USER.upper(), PASSWORD)
    calls = []
    real = server.hmac.compare_digest
    monkeypatch.setattr(server.hmac, "compare_digest", lambda a, b: calls.append((len(a), len(b))) or real(a, b))
    check("nobody", "x")
    assert calls == [(32, 32), (32, 32)]  # the password is compared even when the name is wrong


def test_login_throttle_per_address_window_and_cooldown():
    now = [0.0]
    throttle = server.LoginThrottle(max_failures=3, window_s=10, cooldown_s=30, clock=lambda: now[0])
    assert [throttle.attempt("a") for _ in range(3)] == [0, 0, 0]
    assert throttle.attempt("a") == 30
    assert throttle.attempt("b") == 0  # another address is not affected
    now[0] = 20
    assert throttle.attempt("a") == 10  # still cooling down
    now[0] = 30
    assert throttle.attempt("a") == 0
    now[0] = 45  # the attempt at 30 has left the window
    assert [throttle.attempt("a") for _ in range(3)] == [0, 0, 0]
    throttle.succeeded("a")
    assert [throttle.attempt("a") for _ in range(3)] == [0, 0, 0]


def test_sigterm_exits_raises_system_exit_and_restores_the_handler():
    default = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exited, server.sigterm_exits():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert exited.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is default
