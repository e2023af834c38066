"""The MCP server with the official SDK's own client: tools and their typed schemas, answers whose quotes are
the documents' text at their offsets, bad input as tool errors, streamable HTTP behind the token, and the
install hint when the SDK is missing. (Over stdio, the README's host config is run by test_readme_examples.)"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from assistant.api.auth import Credentials
from assistant.api.mcp import MAX_TEXT_CHARS, build_server, http_server
from tests.servers import QUESTION, TOKEN, free_port, hash_assistant


def _run(coro: Any) -> Any:
    return anyio.run(lambda: coro)


async def _session(server: Any, calls: list[tuple[str, dict]]) -> tuple[Any, list[Any]]:
    async with Client(server) as client:
        tools = await client.list_tools()
        return tools, [await client.call_tool(name, args) for name, args in calls]


@pytest.mark.slow
def test_tools_answer_with_quotes_that_are_the_documents_text(articles_assistant) -> None:
    server = build_server(articles_assistant)
    tools, (searched, asked) = _run(_session(server, [("search", {"query": "Who joined TikTok from Meta?", "k": 3}),
                                                      ("ask", {"question": QUESTION})]))
    assert {t.name for t in tools.tools} == {"search", "ask", "get_document"}
    by_name = {t.name: t for t in tools.tools}
    k = by_name["search"].input_schema["properties"]["k"]
    assert (k["minimum"], k["maximum"], k["default"]) == (1, 50, 5)
    assert by_name["ask"].input_schema["required"] == ["question"]
    assert "citations" in by_name["ask"].output_schema["properties"]
    assert all(t.description for t in tools.tools)
    assert not searched.is_error and len(searched.structured_content["hits"]) == 3
    answer = asked.structured_content
    assert not asked.is_error and not answer["abstained"] and answer["citations"]
    checks = [("get_document", {"source": c["source"]}) for c in answer["citations"]]
    _, documents = _run(_session(server, checks))
    for c, doc in zip(answer["citations"], documents, strict=True):
        window = doc.structured_content
        assert window["start"] == 0 and window["end"] == window["length"] <= MAX_TEXT_CHARS
        assert window["text"][c["start"]:c["end"]] == c["quote"]


def test_bad_input_is_a_tool_error_naming_the_field(tmp_path: Path) -> None:
    a = hash_assistant(tmp_path)
    server = build_server(a)
    source = a.documents()[0].path
    calls = [("search", {"query": "Meta", "k": 0}), ("search", {"query": "Meta", "k": 10_000}),
             ("ask", {"question": ""}), ("ask", {"question": "   "}), ("ask", {"question": "x" * 4001}),
             ("ask", {"question": QUESTION, "mode": "poetry"}), ("get_document", {"source": "no/such.md"}),
             ("get_document", {"source": source, "start": 100, "end": 160})]
    _, results = _run(_session(server, calls))
    messages = [r.content[0].text for r in results[:-1]]
    assert all(r.is_error for r in results[:-1])
    for message, field in zip(messages, ["k", "k", "question", "question: empty", "question", "mode",
                                         "no/such.md: not an indexed document"], strict=True):
        assert field in message, message
    window = results[-1].structured_content
    assert (window["start"], window["end"]) == (100, 160) and window["text"] == a.document_text(source)[100:160]


@pytest.fixture
def mcp_http(tmp_path: Path) -> Iterator[str]:
    """`assistant mcp --http` as the command runs it, in a thread, with a token."""
    a = hash_assistant(tmp_path)
    port = free_port()
    server = http_server(a, "127.0.0.1", port, Credentials.of(token=TOKEN))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(10)


async def _over_http(url: str, token: str) -> Any:
    # A long read timeout: a server just started may still be loading the model (httpx2's default is 5 s).
    async with (httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http,
                Client(streamable_http_client(url, http_client=http)) as client):
        return await client.call_tool("ask", {"question": QUESTION})


def test_streamable_http_behind_the_token(mcp_http: str) -> None:
    result = _run(_over_http(mcp_http, TOKEN))
    assert not result.is_error and result.structured_content["citations"]
    r = httpx2.post(mcp_http, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                    headers={"Authorization": "Bearer wrong", "Accept": "application/json, text/event-stream"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert httpx2.post(mcp_http, json={}).status_code == 401
    assert _run(_over_http(mcp_http, TOKEN)).structured_content["citations"]  # still serving


def test_without_the_sdk_the_command_says_how_to_install_it(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['mcp'] = None; from assistant.cli import main; "
            f"sys.exit(main(['mcp', '--docs', {str(tmp_path)!r}, '--index-dir', {str(tmp_path / 'i')!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.strip() == (
        "error: the MCP server needs the mcp package: pip install 'assistant[mcp]'"), out.stderr


@pytest.mark.slow
def test_the_mcp_http_command_serves_until_stopped(articles_assistant, tmp_path: Path) -> None:
    """`assistant mcp --http` as a user starts it: a token from the environment, never printed."""
    import os
    import signal

    s = articles_assistant.settings
    port = free_port()
    env = {**os.environ, "ASSISTANT_API_TOKEN": TOKEN, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out_file, err_file = tmp_path / "out.txt", tmp_path / "err.txt"
    with out_file.open("w") as out, err_file.open("w") as err:  # files: a full pipe would stall the server
        proc = subprocess.Popen([sys.executable, "-m", "assistant", "mcp", "--http", "--port", str(port), "--docs",
                                 str(s.docs_dir), "--index-dir", str(s.index_dir)], env=env, stdout=out, stderr=err)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx2.post(url, json={}).status_code == 401:
                    break
            except httpx2.TransportError:
                time.sleep(0.2)
        result = _run(_over_http(url, TOKEN))
        assert not result.is_error and "Alex Turner" in result.structured_content["answer"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    printed = out_file.read_text() + err_file.read_text()
    assert f"MCP server on {url} (login required)" in printed and TOKEN not in printed
