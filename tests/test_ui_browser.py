"""The web chat in a real browser: the real Assistant (bundled model, FAISS) over a copy of the articles,
served by Gradio on a free local port, driven by headless Chromium through Playwright."""

from __future__ import annotations

import os
import re
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    # Gradio's queue calls pandas APIs that pandas 3 deprecates; not ours to fix.
    pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000
FAQ = "What expertise do the Amazon and Meta veterans bring to TikTok?"
SCREENSHOTS = ROOT / "docs" / "screenshots"

BAKERY = """The Zephyr Bakery

The Zephyr Bakery in Tromsø was founded by Ingrid Solberg in 1987.
Its signature pastry is the cardamom knot, baked every morning at five.
The bakery closes every Tuesday so that the ovens can be cleaned.
"""

PAYLOAD_TITLE = "<img src=x onerror=\"window.__xss='title'\"> Quokka field notes"
PAYLOAD = f"""{PAYLOAD_TITLE}

The quokka <script>window.__xss='script';alert('xss')</script> lives on Rottnest Island \
<img src=x onerror=alert(document.domain)> near Perth in Western Australia.

Quokkas are small marsupials <b onmouseover=alert(3)>about the size of a domestic cat</b>.
"""


@dataclass
class Server:
    url: str
    assistant: object
    docs: Path


@dataclass
class Watched:
    """A page plus every dialog that opened on it and every request that left the server (never any)."""

    page: object
    dialogs: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Iterator[Server]:
    from assistant.app import Assistant
    from assistant.settings import Settings
    from assistant.ui.app import launch

    root = tmp_path_factory.mktemp("ui")
    docs = root / "docs"
    shutil.copytree(ROOT / "documents", docs)
    settings = Settings.load(env={}, docs_dir=docs, index_dir=root / "index", max_upload_mb=1.0)
    assistant = Assistant.open(settings, embedder=real_embedder)
    demo = launch(assistant, host="127.0.0.1", port=_free_port(), block=False, quiet=True)
    try:
        yield Server(demo.local_url, assistant, docs)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser, url: str) -> Watched:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watched = Watched(page)

    def on_dialog(dialog) -> None:
        watched.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:")) else watched.external.append(r.url))
    page.goto(url, wait_until="domcontentloaded")
    page.locator("#question textarea").wait_for()
    return watched


@pytest.fixture
def chat(browser, server: Server) -> Iterator[Watched]:
    watched = _open(browser, server.url)
    yield watched
    watched.page.context.close()


def _ask(page, question: str):
    """Type a question, send it, and return the locator of its finished answer."""
    answers = page.locator("#chat .answer")
    before = answers.count()
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")
    answers.nth(before).wait_for()
    _settled(page)
    return answers.nth(before)


def _settled(page) -> None:
    """Wait for the chatbot's autoscroll to reach the bottom, so it cannot move the view after a click."""
    page.wait_for_function("""() => { const c = document.querySelector('#chat .bubble-wrap');
                                      return !c || c.scrollHeight - c.scrollTop - c.clientHeight < 4; }""")


def _upload(page, files: list[tuple[str, bytes]]) -> str:
    page.get_by_role("tab", name="Documents").click()
    page.locator("#upload input[type=file]").set_input_files(
        [{"name": name, "mimeType": "text/plain", "buffer": data} for name, data in files])
    page.wait_for_function("n => document.querySelectorAll('#upload table.file-preview tbody tr').length === n",
                           arg=len(files))
    status = page.locator("#doc-status")
    page.locator("#add-docs").click()
    status.locator("p").first.wait_for()
    return status.inner_text()


def test_screenshots(browser, server: Server, tmp_path: Path):
    """Pictures for the docs: written to docs/screenshots when UPDATE_SCREENSHOTS=1, else to a temp dir.
    First in the module, so the Documents tab shows only the two articles."""
    out = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    w = _open(browser, server.url)
    try:
        page = w.page
        answer = _ask(page, FAQ)
        page.evaluate("window.scrollTo(0, 0)")
        page.locator("#chat .bubble-wrap").evaluate("c => { c.scrollTop = 0; }")  # the question and answer
        page.screenshot(path=str(out / "chat-cited-answer.png"))
        answer.locator("a.cite").first.click()
        page.wait_for_url(re.compile(r"#cite-1-\d+$"))
        page.wait_for_timeout(300)
        page.screenshot(path=str(out / "sources-open.png"))
        page.get_by_role("tab", name="Documents").click()
        page.locator("#docs-table").get_by_text("tiktok-shop-shifts-control-to-china.txt").first.wait_for()
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(out / "documents.png"))
    finally:
        w.page.context.close()
    assert (out / "sources-open.png").stat().st_size > 10_000


def test_faq_example_gives_a_cited_answer_and_the_marker_brings_the_quote_into_view(chat: Watched,
                                                                                    server: Server):
    page = chat.page
    page.locator("#examples").get_by_text(FAQ[:40]).click()
    answer = page.locator("#chat .answer").first
    answer.wait_for()
    _settled(page)
    assert page.locator("#chat .q-text").first.inner_text() == FAQ
    markers = answer.locator("a.cite")
    assert markers.count() >= 1
    assert "sources" in answer.inner_text().lower()  # the title is upper-cased by CSS
    assert "tiktok-hires-amazon-and-meta-veterans.txt" in answer.inner_text()

    markers.first.click()
    page.wait_for_url(re.compile(r"#cite-1-1$"))
    source = page.locator("#cite-1-1")
    quote = source.locator("mark")
    quote.wait_for()
    _wait_in_viewport(page, "#cite-1-1")
    assert source.get_attribute("open") is not None
    text = quote.inner_text().strip()
    assert len(text) > 20
    sources = answer.locator("details.source .doc").all_inner_texts()
    assert any(text in server.assistant.document_text(s) for s in sources)  # the original words
    assert chat.dialogs == []
    assert chat.external == []  # offline: no fonts, analytics or scripts from elsewhere


def test_follow_up_uses_the_conversation(chat: Watched):
    page = chat.page
    _ask(page, "Who is Alex Turner?")
    second = _ask(page, "What is his expertise?")  # "his" only makes sense with the first turn
    assert "user behavior analysis" in second.inner_text()
    assert page.locator("#chat .answer").count() == 2
    assert second.locator("#cite-2-1").count() == 1  # anchors are numbered per turn: no clashes
    assert page.locator("#chat .q-text").all_inner_texts() == ["Who is Alex Turner?", "What is his expertise?"]


def test_unanswerable_question_abstains_and_shows_the_closest_passages(chat: Watched):
    answer = _ask(chat.page, "What is the capital of France?")
    text = answer.inner_text()
    assert "Not found in the documents" in text
    assert "closest passages" in text.lower()
    assert answer.locator("details.source").count() >= 1
    assert answer.locator("a.cite").count() == 0


def test_retrieved_passages_accordion_lists_scores(chat: Watched):
    page = chat.page
    _ask(page, FAQ)
    page.locator("#hits-acc").get_by_text("Retrieved passages and scores").click()
    rows = page.locator("#hits table.hits tbody tr")
    rows.first.wait_for()
    assert rows.count() == 5  # settings.k
    assert re.fullmatch(r"0\.\d{4}", rows.first.locator("td").nth(1).inner_text())


def test_uploaded_document_is_indexed_and_answers(chat: Watched, server: Server):
    page = chat.page
    status = _upload(page, [("../Zephyr Bakery.txt", BAKERY.encode()), ("empty.txt", b"  \n")])
    assert "Added Zephyr_Bakery.txt" in status
    assert "Rejected empty.txt" in status and "empty" in status
    assert (server.docs / "Zephyr_Bakery.txt").is_file()
    assert not (server.docs.parent / "Zephyr Bakery.txt").exists()
    page.locator("#docs-table").get_by_text("Zephyr_Bakery.txt").first.wait_for()

    page.get_by_role("tab", name="Chat").click()
    answer = _ask(page, "Who founded the Zephyr Bakery?")
    assert "Ingrid Solberg" in answer.inner_text()
    assert "Zephyr_Bakery.txt" in answer.locator("details.source .doc").all_inner_texts()


def test_too_large_or_unsupported_uploads_are_refused_with_a_clear_message(chat: Watched, server: Server):
    """Gradio refuses these in the browser (max_file_size, file_types) before anything is uploaded; the
    server enforces the same limits, and add_files checks them again for other clients."""
    page = chat.page
    page.get_by_role("tab", name="Documents").click()
    upload = page.locator("#upload input[type=file]")
    upload.set_input_files([{"name": "big.txt", "mimeType": "text/plain", "buffer": b"word " * 300_000}])
    page.get_by_text('File(s) exceed the maximum allowed size of 1.0 Mb: "big.txt"').wait_for()
    upload.set_input_files([{"name": "tool.exe", "mimeType": "text/plain", "buffer": b"MZ"}])
    page.get_by_text("Invalid file type: tool.exe").wait_for()
    assert not (server.docs / "big.txt").exists() and not (server.docs / "tool.exe").exists()


def test_removed_document_disappears(chat: Watched, server: Server):
    page = chat.page
    _upload(page, [("to-remove.md", b"# Temporary\n\nThe walrus counted forty-two pebbles on Tuesday.\n")])
    page.locator("#docs-table").get_by_text("to-remove.md").first.wait_for()
    page.locator("#remove-choice input").click()
    page.get_by_role("option", name="to-remove.md").click()
    page.locator("#remove-doc").click()
    page.locator("#doc-status").get_by_text("Removed to-remove.md").wait_for()
    assert page.locator("#docs-table").get_by_text("to-remove.md").count() == 0
    assert not (server.docs / "to-remove.md").exists()
    assert all(d.path != "to-remove.md" for d in server.assistant.documents())


def test_document_with_html_payloads_is_shown_as_text_and_runs_nothing(chat: Watched, server: Server):
    page = chat.page
    assert "Added quokka.txt" in _upload(page, [("quokka.txt", PAYLOAD.encode())])
    page.locator("#docs-table").get_by_text("quokka.txt").first.wait_for()
    assert "<img src=x" in page.locator("#docs-table").inner_text()  # the title, as characters

    page.get_by_role("tab", name="Chat").click()
    answer = _ask(page, "Where does the quokka live?")
    page.locator("#hits-acc").get_by_text("Retrieved passages and scores").click()
    page.locator("#hits table.hits").wait_for()
    shown = answer.inner_text() + page.locator("#hits").inner_text()
    assert "<script>window.__xss='script';alert('xss')</script>" in shown
    assert "<img src=x onerror=alert(document.domain)>" in shown
    assert "quokka.txt" in answer.locator("details.source .doc").all_inner_texts()

    page.wait_for_timeout(500)  # give any injected handler the chance to run
    assert chat.dialogs == []
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("b[onmouseover]").count() == 0
    scripts = page.evaluate("[...document.scripts].map(s => s.textContent)")
    assert not any("__xss" in s or "alert(" in s for s in scripts)
    assert page.locator("#chat [onerror], #chat [onmouseover], #hits [onerror], #docs-table [onerror]").count() == 0


def test_two_browsers_keep_separate_conversations(browser, server: Server):
    a, b = _open(browser, server.url), _open(browser, server.url)
    try:
        questions = {"a": "Who is Jane Williams?",
                     "b": "Will TikTok's focus on eCommerce change its core entertainment value?"}
        for w, q in ((a, questions["a"]), (b, questions["b"])):  # both in flight at once
            w.page.locator("#question textarea").fill(q)
            w.page.locator("#question textarea").press("Enter")
        for w in (a, b):
            w.page.locator("#chat .answer").first.wait_for()
        assert a.page.locator("#chat .q-text").all_inner_texts() == [questions["a"]]
        assert b.page.locator("#chat .q-text").all_inner_texts() == [questions["b"]]

        follow_up = _ask(a.page, "What was her track record there?")
        assert "supply chains" in follow_up.inner_text()  # a's history, not b's
        assert a.page.locator("#chat .answer").count() == 2
        assert b.page.locator("#chat .answer").count() == 1
        assert questions["a"] not in b.page.locator("#chat").inner_text()
    finally:
        a.page.context.close()
        b.page.context.close()


def test_llm_mode_streams_flags_unsupported_sentences_and_escapes_model_output(browser, server: Server):
    from assistant.app import Assistant
    from assistant.ui.app import launch

    from .openai_server import serve

    reply = "Jane Williams joined TikTok from Amazon [1]. The moon is <img src=x onerror=alert(9)> cheese."
    with serve(reply) as llm:
        base = server.assistant
        settings = base.settings.replace(llm_base_url=llm.base_url, llm_model="test-model")
        demo = launch(Assistant(settings, base.retriever), host="127.0.0.1", port=_free_port(), block=False,
                      quiet=True)
        w = _open(browser, demo.local_url)
        try:
            page = w.page
            page.locator("#llm-status").get_by_text("LLM: ok: test-model").wait_for()
            page.locator("#mode").get_by_text("LLM: writes an answer").click()
            answer = _ask(page, "Who joined TikTok from Amazon?")
            text = answer.inner_text()
            assert "llm answer" in text
            assert answer.locator("a.cite").count() >= 1
            flagged = answer.locator(".answer-text .unsupported")
            assert flagged.count() == 1 and "The moon is <img src=x onerror=alert(9)> cheese." in flagged.inner_text()
            assert "no valid citation" in text
            page.wait_for_timeout(300)
            assert w.dialogs == [] and page.locator("img[src='x']").count() == 0
        finally:
            w.page.context.close()
            demo.close()


def test_http_api_ask_and_search(server: Server):
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    answer = client.predict(FAQ, api_name="/ask")
    assert answer["question"] == FAQ and not answer["abstained"]
    assert re.search(r"\[1\]", answer["answer"]) and answer["citations"][0]["quote"]
    found = client.predict("privacy concerns", 3, api_name="/search")
    assert len(found["hits"]) == 3 and found["hits"][0]["rank"] == 1
    documents = client.predict(api_name="/documents")
    assert any(d["source"] == "tiktok-shop-shifts-control-to-china.txt" for d in documents)


def _wait_in_viewport(page, selector: str) -> None:
    from playwright.sync_api import expect

    try:
        expect(page.locator(selector)).to_be_in_viewport(timeout=10_000)
    except AssertionError:
        rect = page.evaluate("""sel => { const r = document.querySelector(sel).getBoundingClientRect();
            const c = document.querySelector('#chat .bubble-wrap, #chat [role=log]');
            return [r.top, r.bottom, window.innerHeight, window.scrollY, location.hash,
                    c && c.scrollTop, c && c.getBoundingClientRect().top]; }""", selector)
        raise AssertionError(f"{selector} not in view: {rect}") from None
