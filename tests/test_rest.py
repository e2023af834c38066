"""The REST API against real servers on free loopback ports, called with httpx: the CLI's JSON contract,
citations in their documents, bad input, body bounds, the login, 503 while the model loads, and /docs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from assistant.embed import HashEmbedder, LazyEmbedder
from tests.servers import PASSWORD, QUESTION, TOKEN, USER, hash_assistant, launched

pytestmark = [
    # Gradio's queue calls pandas APIs that pandas 3 deprecates; not ours to fix.
    pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


@pytest.fixture(scope="module")
def real(articles_assistant) -> Iterator[str]:
    """The real pipeline (bundled model) over the two articles, served."""
    with launched(articles_assistant) as url:
        yield url


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    """The fake embedder over the articles, served without a login."""
    a = hash_assistant(tmp_path_factory.mktemp("rest-fake"))
    with launched(a) as url:
        yield url, a


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    a = hash_assistant(tmp_path_factory.mktemp("rest-guarded"), auth_user=USER, auth_password=PASSWORD,
                       api_token=TOKEN)
    with launched(a) as url:
        yield url


def _error(r: httpx.Response) -> tuple[int, str, str]:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert "\n" not in body["error"]["message"]
    return r.status_code, body["error"]["code"], body["error"]["message"]


# --- the contract: the CLI's --json objects -----------------------------------------------------------------

@pytest.mark.slow
def test_search_and_ask_return_exactly_the_clis_json(real: str, articles_assistant, capsys) -> None:
    from assistant.cli import main

    s = articles_assistant.settings
    where = ["--docs", str(s.docs_dir), "--index-dir", str(s.index_dir)]
    rest_search = httpx.post(f"{real}/v1/search", json={"query": "Who joined TikTok from Meta?", "k": 3}).json()
    rest_ask = httpx.post(f"{real}/v1/ask", json={"question": QUESTION}, timeout=60).json()
    assert main(["search", "Who joined TikTok from Meta?", "--k", "3", "--json", *where]) == 0
    cli_search = json.loads(capsys.readouterr().out)
    assert main(["ask", QUESTION, "--json", *where]) == 0
    cli_ask = json.loads(capsys.readouterr().out)
    for rest, cli in ((rest_search, cli_search), (rest_ask, cli_ask)):
        assert set(rest["timings_ms"]) == set(cli["timings_ms"])
        rest.pop("timings_ms"), cli.pop("timings_ms")
        assert rest == cli
    assert len(rest_search["hits"]) == 3 and rest_ask["citations"] and not rest_ask["abstained"]


@pytest.mark.slow
def test_every_citation_is_the_loaded_text_at_its_offsets(real: str, articles_assistant) -> None:
    answer = httpx.post(f"{real}/v1/ask", json={"question": "What expertise do the Amazon and Meta veterans bring "
                                                            "to TikTok?"}, timeout=60).json()
    assert len(answer["citations"]) >= 2
    docs = articles_assistant.settings.docs_dir
    for c in answer["citations"]:
        doc = httpx.get(f"{real}/v1/documents/{c['source']}").json()
        assert doc["text"][c["start"]:c["end"]] == c["quote"]
        assert (docs / c["source"]).read_text(encoding="utf-8")[c["start"]:c["end"]] == c["quote"]  # a .txt file
        assert doc["text"][c["passage_start"]:c["passage_end"]].count(c["quote"]) >= 1
        assert "loaded text" in doc["offsets"] and doc["source"] == c["source"]
    for h in answer["hits"]:
        assert httpx.get(f"{real}/v1/documents/{h['source']}").json()["text"][h["start"]:h["end"]] == h["text"]


@pytest.mark.slow
def test_a_follow_up_uses_the_history(real: str) -> None:
    first = httpx.post(f"{real}/v1/ask", json={"question": QUESTION}, timeout=60).json()
    follow = httpx.post(f"{real}/v1/ask", json={"question": "What is his expertise?", "history": [
        {"question": QUESTION, "answer": first["answer"]}]}, timeout=60).json()
    assert not follow["abstained"]
    assert any("user behavior analysis" in c["quote"] for c in follow["citations"]), follow["citations"]


def test_documents_list_and_text(fake) -> None:
    url, a = fake
    listed = httpx.get(f"{url}/v1/documents").json()["documents"]
    assert [d["source"] for d in listed] == [d.path for d in a.documents()]
    assert all(d["chunks"] > 0 and d["title"] for d in listed)
    doc = httpx.get(f"{url}/v1/documents/{listed[0]['source']}").json()
    assert doc["text"] == a.document_text(listed[0]["source"])
    assert doc["sections"] and all(s["title"] in doc["text"][s["start"]:s["start"] + len(s["title"]) + 8]
                                   for s in doc["sections"])


def test_healthz_describes_the_live_index(fake) -> None:
    url, a = fake
    health = httpx.get(f"{url}/healthz").json()
    dense, total = a.dense_status()
    assert health["status"] == "ok" and health["documents"] == 2 and health["chunks"] == total == dense
    assert health["model"] == "hash-64" and health["generation"] == a.retriever.reader.path.name


# --- bad input ----------------------------------------------------------------------------------------------

BAD = [
    ("/v1/ask", {"question": ""}, "question: empty"),
    ("/v1/ask", {"question": "   "}, "question: empty"),
    ("/v1/ask", {"question": "x" * 4001}, "question: 4,001 characters; the limit is 4,000"),
    ("/v1/ask", {"question": QUESTION, "k": 0}, "k: must be between 1 and 50 (max_k), got 0"),
    ("/v1/ask", {"question": QUESTION, "k": 10_000}, "k: must be between 1 and 50 (max_k), got 10000"),
    ("/v1/ask", {"question": QUESTION, "k": 2.5}, "k: Input should be a valid integer"),
    ("/v1/ask", {"question": QUESTION, "k": "3"}, "k: Input should be a valid integer"),
    ("/v1/ask", {"question": QUESTION, "mode": "poetry"}, "mode: Input should be 'extractive' or 'llm'"),
    ("/v1/ask", {"question": QUESTION, "history": [{"question": "q"}] * 21}, "history: 21 turns; the limit is 20"),
    ("/v1/ask", {"question": QUESTION, "history": [{"answer": "a"}]}, "history.0.question: required"),
    ("/v1/ask", {"question": 42}, "question: Input should be a valid string"),
    ("/v1/ask", {"quesiton": QUESTION}, "question: required (and 1 more)"),
    ("/v1/ask", [QUESTION], "body: Input should be a valid dictionary"),
    ("/v1/search", {"query": ""}, "query: empty"),
    ("/v1/search", {"query": "pebbles", "k": 0}, "k: must be between 1 and 50"),
    ("/v1/search", {"query": "pebbles", "k": 10_000}, "k: must be between 1 and 50 (max_k), got 10000"),
    ("/v1/search", {"query": "pebbles", "retrieval": "magic"}, "retrieval: Input should be 'hybrid', 'dense' or"),
    ("/v1/search", {"query": "pebbles", "kk": 3}, "kk: unknown field"),
    ("/v1/search", None, "body: a JSON object is required"),
]


@pytest.mark.parametrize(("path", "body", "message"), BAD, ids=[m for _, _, m in BAD])
def test_bad_input_is_a_400_naming_the_field(fake, path: str, body: object, message: str) -> None:
    url, _ = fake
    r = httpx.post(f"{url}{path}", json=body) if body is not None else httpx.post(f"{url}{path}")
    status, code, text = _error(r)
    assert (status, code) == (400, "invalid_input") and text.startswith(message), text


def test_invalid_json_and_unknown_routes_and_sources(fake) -> None:
    url, _ = fake
    r = httpx.post(f"{url}/v1/search", content=b'{"query": ', headers={"Content-Type": "application/json"})
    assert _error(r)[:2] == (400, "invalid_input") and _error(r)[2].startswith("body: invalid JSON")
    assert _error(httpx.get(f"{url}/v1/documents/no/such.md")) == (
        404, "unknown_source", "no/such.md: not an indexed document (GET /v1/documents lists them)")
    assert _error(httpx.get(f"{url}/v1/documents/" + "x" * 1025))[:2] == (400, "invalid_input")
    assert _error(httpx.get(f"{url}/v1/nothing")) == (404, "not_found", "no route GET /v1/nothing")
    assert _error(httpx.get(f"{url}/v1/search"))[:2] == (405, "method_not_allowed")
    assert httpx.post(f"{url}/v1/search", json={"query": "Meta"}).status_code == 200  # still serving


def test_a_body_larger_than_the_bounds_allow_is_413_before_it_is_read(fake) -> None:
    from assistant.api.limits import max_body_bytes

    url, a = fake
    limit = max_body_bytes(a.settings)
    assert limit == 6 * 4000 * (1 + 20 * 11) + 64 * 1024  # the longest history the validators accept, escaped
    big = json.dumps({"query": "x" * limit}).encode()
    status, code, message = _error(httpx.post(f"{url}/v1/search", content=big,
                                              headers={"Content-Type": "application/json"}))
    assert (status, code) == (413, "too_large") and f"the limit is {limit:,}" in message

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"query": "'
        for _ in range(limit // 65536 + 2):
            yield b"y" * 65536
        yield b'"}'

    r = httpx.post(f"{url}/v1/ask", content=chunked(), headers={"Content-Type": "application/json"})
    assert _error(r)[:2] == (413, "too_large")
    longest_valid = {"question": "q" * 4000, "history": [{"question": "q" * 4000, "answer": "\u00e9" * 40_000}] * 20}
    r = httpx.post(f"{url}/v1/ask", content=json.dumps(longest_valid).encode(),  # ensure_ascii: 6 bytes a char
                   headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 200, r.text
    assert httpx.post(f"{url}/v1/search", json={"query": "Meta"}).status_code == 200


def test_a_loopback_server_refuses_other_host_names(fake) -> None:
    url, _ = fake
    assert _error(httpx.get(f"{url}/healthz", headers={"Host": "attacker.example:80"}))[:2] == (403, "forbidden_host")
    for host in ("localhost", "127.0.0.1", "[::1]"):
        assert httpx.get(f"{url}/healthz", headers={"Host": f"{host}:1234"}).status_code == 200


# --- the login ----------------------------------------------------------------------------------------------

def _paths(url: str, **auth: object) -> list[tuple[str, str]]:
    schema = httpx.get(f"{url}/v1/openapi.json", **auth).json()
    return [(method.upper(), path.replace("{source}", "walrus.txt").replace("{model}", "assistant"))
            for path, ops in schema["paths"].items() for method in ops]


def test_every_api_route_needs_the_login(guarded: str) -> None:
    paths = _paths(guarded, auth=(USER, PASSWORD)) + [("GET", "/docs"), ("GET", "/v1/openapi.json"),
                                                       ("GET", "/docs/assets/swagger-ui.css")]
    assert len(paths) >= 11
    for method, path in paths:
        r = httpx.request(method, f"{guarded}{path}", json={})
        assert _error(r)[:2] == (401, "unauthorized"), path
        assert r.headers["WWW-Authenticate"] == 'Basic realm="assistant", charset="UTF-8", Bearer realm="assistant"'


def test_basic_bearer_and_the_chats_cookie_all_work(guarded: str) -> None:
    body = {"query": "Meta", "k": 2}
    assert httpx.post(f"{guarded}/v1/search", json=body, auth=(USER, PASSWORD)).status_code == 200
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.post(f"{guarded}/v1/search", json=body, headers=bearer).status_code == 200
    with httpx.Client(base_url=guarded) as browser:
        assert browser.post("/login", data={"username": USER, "password": PASSWORD}).status_code == 200
        assert browser.post("/v1/search", json=body).status_code == 200
        assert browser.get("/docs").status_code == 200
    wrong = [httpx.post(f"{guarded}/v1/search", json=body, auth=(USER, "nope")),
             httpx.post(f"{guarded}/v1/search", json=body, headers={"Authorization": "Bearer nope"}),
             httpx.post(f"{guarded}/v1/search", json=body, headers={"Authorization": "Basic %%%"})]
    for r in wrong:
        status, code, message = _error(r)
        assert (status, code, message) == (401, "unauthorized", "wrong login or token")
        assert "nope" not in r.text and PASSWORD not in r.text and TOKEN not in r.text
    # the API's basic login opens the API only: the chat's own routes still want the cookie
    assert httpx.get(f"{guarded}/config", auth=(USER, PASSWORD)).status_code == 401
    assert httpx.post(f"{guarded}/v1/search", json=body, auth=(USER, PASSWORD)).status_code == 200  # cleared


def test_failed_api_logins_count_in_the_chats_throttle(tmp_path: Path) -> None:
    a = hash_assistant(tmp_path, auth_user=USER, auth_password=PASSWORD)
    with launched(a) as url:
        body = {"query": "Meta"}
        codes = [httpx.post(f"{url}/v1/search", json=body, auth=(USER, f"guess{i}")).status_code for i in range(5)]
        assert codes == [401] * 5
        refused = httpx.post(f"{url}/v1/search", json=body, auth=(USER, PASSWORD))  # even the right one, now
        assert _error(refused)[:2] == (429, "rate_limited") and int(refused.headers["Retry-After"]) >= 1
        assert httpx.post(f"{url}/login", data={"username": USER, "password": PASSWORD}).status_code == 429


def test_a_token_alone_guards_the_api_and_leaves_the_chat_open(tmp_path: Path, capsys) -> None:
    from assistant.ui.app import launch
    from tests.servers import free_port

    a = hash_assistant(tmp_path, api_token=TOKEN)
    demo = launch(a, host="127.0.0.1", port=free_port(), block=False, quiet=False)
    try:
        url = demo.local_url.rstrip("/")
        assert _error(httpx.post(f"{url}/v1/search", json={"query": "Meta"}))[:2] == (401, "unauthorized")
        assert httpx.post(f"{url}/v1/search", json={"query": "Meta"},
                          headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert httpx.post(f"{url}/v1/search", json={"query": "Meta"}, auth=(USER, PASSWORD)).status_code == 401
        assert httpx.get(f"{url}/config").status_code == 200
    finally:
        demo.close(verbose=False)
    printed = capsys.readouterr()
    assert f"{url}/docs" in printed.out and TOKEN not in printed.out + printed.err


# --- 503 while the model loads ------------------------------------------------------------------------------

class SlowModel(LazyEmbedder):
    """The real lazy loader, whose model (the fake one) arrives when the test says so."""

    def __init__(self) -> None:
        super().__init__("hash-64")
        self.gate = threading.Event()

    def _load(self) -> HashEmbedder:
        assert self.gate.wait(60)
        return HashEmbedder()


def test_503_while_the_model_loads_then_answers(tmp_path: Path) -> None:
    from assistant.app import Assistant
    from assistant.index import build_index

    a = hash_assistant(tmp_path)
    build_index(a.settings, embedder=HashEmbedder())
    slow = SlowModel()
    a = Assistant.open(a.settings, embedder=slow)
    with launched(a) as url:
        warm = threading.Thread(target=a.warm_up)
        warm.start()
        try:
            for _ in range(100):
                if slow.loading:
                    break
                threading.Event().wait(0.05)
            assert slow.loading
            health = httpx.get(f"{url}/healthz")
            assert health.status_code == 503 and health.json()["status"] == "loading"
            for path, body in (("/v1/search", {"query": "Meta"}), ("/v1/ask", {"question": QUESTION})):
                r = httpx.post(f"{url}{path}", json=body)
                assert _error(r)[:2] == (503, "loading") and r.headers["Retry-After"] == "2"
            assert httpx.post(f"{url}/v1/search", json={"query": "Meta", "retrieval": "bm25"}).status_code == 200
            assert httpx.get(f"{url}/v1/documents").status_code == 200
        finally:
            slow.gate.set()
            warm.join(30)
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
        assert httpx.post(f"{url}/v1/ask", json={"question": QUESTION}).json()["citations"]


# --- the OpenAPI page ---------------------------------------------------------------------------------------

def test_openapi_schema_documents_routes_offsets_and_errors(fake) -> None:
    url, _ = fake
    schema = httpx.get(f"{url}/v1/openapi.json").json()
    assert {"/v1/search", "/v1/ask", "/v1/documents", "/v1/documents/{source}", "/healthz", "/v1/models",
            "/v1/chat/completions"} <= set(schema["paths"])
    assert "loaded text" in schema["info"]["description"] and "loaded text" in json.dumps(schema["paths"])
    ask = schema["paths"]["/v1/ask"]["post"]
    assert {"200", "400", "401", "413", "503"} <= set(ask["responses"])
    assert "AskRequest" in json.dumps(ask["requestBody"])
    page = httpx.get(f"{url}/docs")
    assert page.status_code == 200 and "/v1/openapi.json" in page.text and "cdn" not in page.text.lower()
    assert httpx.get(f"{url}/docs/assets/swagger-ui-bundle.js").status_code == 200


@pytest.mark.browser
@pytest.mark.slow
def test_the_docs_page_renders_offline_in_a_browser(fake) -> None:
    from playwright.sync_api import sync_playwright

    from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS

    url, _ = fake
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:")) else outside.append(r.url))
            page.goto(f"{url}/docs")
            page.locator(".opblock").first.wait_for(timeout=30_000)
            summaries = page.locator(".opblock-summary-path").all_inner_texts()
        finally:
            browser.close()
    assert {"/v1/search", "/v1/ask", "/v1/chat/completions"} <= {s.replace("\u200b", "") for s in summaries}
    assert outside == []
