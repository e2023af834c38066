"""The README's examples for other apps, run exactly as printed against a running server (the real model
over the articles): each is the fenced block after a `<!-- example: NAME -->` comment, with only the port,
and for the MCP host config the paths, replaced by the test's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests.servers import TOKEN, launched

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PRINTED_URL = "http://127.0.0.1:7860"
CHECKOUT = "/path/to/assistant"


def example(name: str) -> str:
    """The fenced block that follows `<!-- example: name -->` in the README."""
    found = re.findall(rf"<!-- example: {re.escape(name)} -->\n```\w*\n(.*?)\n```", README.read_text(), re.S)
    assert len(found) == 1, f"README.md must hold exactly one example {name!r}"
    return found[0]


@pytest.fixture(scope="module")
def server(articles_assistant) -> Iterator[str]:
    """The articles' Assistant, served with a token as the examples expect (ASSISTANT_API_TOKEN)."""
    from assistant.app import Assistant

    a = Assistant(articles_assistant.settings.replace(api_token=TOKEN), articles_assistant.retriever)
    with launched(a) as url:
        yield url


def _run(args: list[str], url: str) -> str:
    env = {**os.environ, "ASSISTANT_API_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _objects(text: str) -> list[dict]:
    decoder, objects, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        obj, i = decoder.raw_decode(text, i)
        objects.append(obj)
    return objects


def test_the_curl_examples(server: str, articles_assistant) -> None:
    block = example("rest")
    assert block.count(PRINTED_URL) == 3
    searched, asked, document = _objects(_run(["bash", "-euo", "pipefail", "-c",
                                               block.replace(PRINTED_URL, server)], server))
    assert len(searched["hits"]) == 3 and any("Alex Turner" in h["text"] for h in searched["hits"])
    assert any("user behavior analysis" in c["quote"] for c in asked["citations"]), asked
    assert document["text"] == articles_assistant.document_text("tiktok-hires-amazon-and-meta-veterans.txt")
    for c in asked["citations"]:
        assert document["text"][c["start"]:c["end"]] == c["quote"]


def test_the_openai_example(server: str) -> None:
    block = example("openai")
    assert block.count(PRINTED_URL) == 1
    printed = _run([sys.executable, "-c", block.replace(PRINTED_URL, server)], server)
    answer, _, rest = printed.partition("\n\nSources:\n")
    assert answer.startswith("Joining Williams is Alex Turner") and "[1]" in answer
    assert re.search(r"^1 tiktok-hires-amazon-and-meta-veterans\.txt \d+ \d+$", rest, re.M), rest
    assert rest.count("Sources:") == 1 and "privacy" in rest.lower()  # the streamed answer, with its sources


def test_the_langchain_example(server: str, articles_assistant) -> None:
    block = example("langchain")
    printed = _run([sys.executable, "-c", block.replace(PRINTED_URL, server)], server).splitlines()
    assert len(printed) == 3
    for line in printed:
        source, start, end, text = line.split(" ", 3)
        passage = articles_assistant.document_text(source)[int(start):int(end)]
        assert passage[:60].replace("\n", " ") == text


def test_the_mcp_host_config(articles_assistant) -> None:
    """The host config's command, started by the SDK's stdio client as a host would start it."""
    from mcp import Client, StdioServerParameters

    s = articles_assistant.settings
    config = example("mcp")
    assert config.count(CHECKOUT) == 3
    config = (config.replace(f"{CHECKOUT}/.venv/bin/", f"{Path(sys.executable).parent}/")
              .replace(f"{CHECKOUT}/documents", str(s.docs_dir)).replace(f"{CHECKOUT}/index", str(s.index_dir)))
    entry = json.loads(config)["mcpServers"]["documents"]
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env={"PYTHONPATH": str(ROOT)})

    async def session() -> tuple[list[str], dict, dict]:
        async with Client(params) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            asked = (await client.call_tool("ask", {"question": "Who is Alex Turner?"})).structured_content
            source = asked["citations"][0]["source"]
            doc = (await client.call_tool("get_document", {"source": source})).structured_content
            return tools, asked, doc

    tools, asked, doc = anyio.run(session)
    assert sorted(tools) == ["ask", "get_document", "search"]
    c = asked["citations"][0]
    assert doc["text"][c["start"]:c["end"]] == c["quote"] and "Alex Turner" in asked["answer"]
