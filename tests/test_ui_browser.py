"""The web chat in a real browser: the real Assistant (bundled model, FAISS) over a copy of the articles,
served by Gradio on a free local port, driven by headless Chromium through Playwright."""

from __future__ import annotations

import json
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


LIGHTHOUSE_HTML = b"""<html><head><title>Skerry lighthouse</title></head><body><nav>Home | About</nav>
<main><h1>Skerry lighthouse</h1><p>The tower stands on a bare rock west of the harbour.</p>
<h2>History</h2><p>The Skerry lighthouse was automated in 1998 after a century of resident keepers.</p>
<table><tr><th>Keeper</th><th>Years</th></tr><tr><td>Agnes Moir</td><td>1921-1950</td></tr></table>
</main></body></html>"""
SEAL_PAGES = [["Harbour wildlife survey", "Gulls nest on the breakwater every spring."],
              ["Seals", "The harbour seal colony counted eighty-one animals in the August census."]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Iterator[Server]:
    from assistant.app import Assistant
    from assistant.settings import Settings
    from assistant.ui.app import launch

    from .test_load import make_pdf

    root = tmp_path_factory.mktemp("ui")
    docs = root / "docs"
    shutil.copytree(ROOT / "documents", docs)
    (docs / "lighthouse.html").write_bytes(LIGHTHOUSE_HTML)
    (docs / "survey.pdf").write_bytes(make_pdf(SEAL_PAGES, title="Harbour wildlife survey"))
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


PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}


def _open(browser, url: str, context=None, **options) -> Watched:
    if context is None:
        context = browser.new_context(**({"viewport": {"width": 1280, "height": 1000}} | options))
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
    """Type a question, send it, and return the locator of its finished answer (once it is in view)."""
    answers = page.locator("#chat .answer")
    before = answers.count()
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")
    answers.nth(before).wait_for()
    _settled(page)
    return answers.nth(before)


def _settled(page) -> None:
    """Wait until the page script has brought the last question to the top of the conversation's view (or
    as near as the conversation can scroll)."""
    page.wait_for_function("""() => { const q = [...document.querySelectorAll('#chat .q-text')].pop();
        const log = document.querySelector('#chat .bubble-wrap');
        if (!q || !log) return false;
        const r = q.getBoundingClientRect(), l = log.getBoundingClientRect();
        const bottom = log.scrollHeight - log.scrollTop - log.clientHeight < 4;
        return r.top >= l.top - 1 && (r.top < l.top + 80 || bottom); }""")


def _open_source(page, answer, n: int = 1, source: str = ""):
    """Click marker [n] of `answer` (citing `source`); the source pane's active quote, once it is scrolled
    into view."""
    answer.locator("a.cite", has_text=f"[{n}]").first.click()
    page.locator("#source-pane .pane-head", has_text=f"[{n}]").filter(has_text=source).wait_for()
    quote = page.locator("#pane-active")
    _wait_in_viewport(page, "#pane-active")
    return quote


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


def _choose(page, name: str) -> None:
    page.locator("#remove-choice input").click()
    page.get_by_role("option", name=name, exact=True).click()


def test_screenshots(browser, server: Server, tmp_path: Path):
    """Pictures for the README, desktop and phone: written to docs/screenshots when UPDATE_SCREENSHOTS=1,
    else to a temp dir. First in the module, so the Documents tab shows only the seed documents."""
    out = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    w = _open(browser, server.url)
    try:
        page = w.page
        answer = _ask(page, FAQ)
        _open_source(page, answer, 2)
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(300)
        page.screenshot(path=str(out / "chat-source-pane.png"))
        page.get_by_role("tab", name="Documents").click()
        page.locator("#docs-table").get_by_text("survey.pdf").first.wait_for()
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(out / "documents.png"))
    finally:
        w.page.context.close()
    phone = _open(browser, server.url, **PHONE)
    try:
        page = phone.page
        _ask(page, "Who is Alex Turner?")
        page.wait_for_timeout(300)
        page.screenshot(path=str(out / "phone-answer.png"))
    finally:
        phone.page.context.close()
    for name in ("chat-source-pane.png", "documents.png", "phone-answer.png"):
        assert (out / name).stat().st_size > 10_000, name


def test_faq_example_gives_a_cited_answer_and_the_marker_opens_its_document_at_the_quote(chat: Watched,
                                                                                       server: Server):
    page = chat.page
    page.locator("#examples").get_by_text(FAQ[:40]).click()
    answer = page.locator("#chat .answer").first
    answer.wait_for()
    _settled(page)
    assert page.locator("#chat .q-text").first.inner_text() == FAQ
    assert answer.locator("a.cite").count() >= 2
    assert "tiktok-hires-amazon-and-meta-veterans.txt" in answer.inner_text()

    quote = _open_source(page, answer, 1)
    pane = page.locator("#source-pane")
    text = server.assistant.document_text("tiktok-hires-amazon-and-meta-veterans.txt")
    assert quote.inner_text().strip() in text and len(quote.inner_text()) > 20
    assert "citation 1 of" in pane.inner_text() and "tiktok-hires-amazon-and-meta-veterans.txt" in pane.inner_text()
    assert pane.locator("mark.quote").count() >= 2  # the answer's other quote in that document is marked too
    assert pane.locator("h2, h3, h4").count() >= 3  # rendered as a document, not a passage
    first = quote.inner_text()
    page.locator("#pane-next").click()
    page.locator("#source-pane .pane-n", has_text="[2]").wait_for()
    _wait_in_viewport(page, "#pane-active")
    assert page.locator("#pane-active").inner_text() != first
    page.locator("#pane-prev").click()
    page.locator("#source-pane .pane-n", has_text="[1]").wait_for()
    assert chat.dialogs == []
    assert chat.external == []  # offline: no fonts, analytics or scripts from elsewhere


def test_the_pane_highlights_the_quote_in_html_and_pdf_sources(chat: Watched, server: Server):
    page = chat.page
    answer = _ask(page, "When was the Skerry lighthouse automated?")
    assert "lighthouse.html" in answer.locator("details.source .doc").all_inner_texts()
    n = int(answer.locator("details.source", has_text="lighthouse.html").first.get_attribute("id").rsplit("-", 1)[1])
    quote = _open_source(page, answer, n, "lighthouse.html")
    html_text = server.assistant.document_text("lighthouse.html")
    assert "automated in 1998" in quote.inner_text() and quote.inner_text().strip() in html_text
    assert "History" in page.locator("#source-pane .breadcrumb").inner_text()
    assert page.locator("#source-pane table.doc-table td", has_text="Agnes Moir").count() == 1  # a table

    answer = _ask(page, "How many animals did the harbour seal colony count?")
    n = int(answer.locator("details.source", has_text="survey.pdf").first.get_attribute("id").rsplit("-", 1)[1])
    quote = _open_source(page, answer, n, "survey.pdf")
    assert "eighty-one animals" in quote.inner_text()
    assert "page 2 of 2" in page.locator("#source-pane .breadcrumb").inner_text()
    assert "Gulls nest" not in page.locator("#source-pane").inner_text()  # the quote's page only


def test_follow_up_uses_the_conversation(chat: Watched):
    page = chat.page
    _ask(page, "Who is Alex Turner?")
    second = _ask(page, "What is his expertise?")  # "his" only makes sense with the first turn
    assert "user behavior analysis" in second.inner_text()
    assert page.locator("#chat .answer").count() == 2
    assert second.locator("#cite-2-1").count() == 1  # anchors are numbered per turn: no clashes
    assert page.locator("#chat .q-text").all_inner_texts() == ["Who is Alex Turner?", "What is his expertise?"]


def test_a_reload_keeps_the_conversation_and_the_list_reopens_renames_and_deletes(browser, server: Server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        w = _open(browser, server.url, context=context)
        page = w.page
        _ask(page, "Who is Jane Williams?")
        _ask(page, "What was her track record there?")
        page.locator("#conv-list").get_by_text("Who is Jane Williams? (2)").wait_for()
        page.reload(wait_until="domcontentloaded")
        page.locator("#chat .answer").nth(1).wait_for()
        assert page.locator("#chat .q-text").all_inner_texts() == ["Who is Jane Williams?",
                                                                    "What was her track record there?"]
        follow_up = _ask(page, "What is her expertise?")  # the history came back too
        assert "eCommerce" in follow_up.inner_text()

        page.locator("#new-conv").click()
        page.wait_for_function("() => document.querySelectorAll('#chat .answer').length === 0")
        _ask(page, "Who is Alex Turner?")
        page.locator("#conv-list").get_by_text("Who is Alex Turner? (1)").wait_for()
        page.locator("#conv-list").get_by_text("Who is Jane Williams? (3)").click()
        page.wait_for_function("() => document.querySelectorAll('#chat .answer').length === 3")
        page.locator("#rename-text textarea, #rename-text input").first.fill("Jane <b>notes</b>")
        page.locator("#rename-conv").click()
        page.locator("#conv-list").get_by_text("Jane <b>notes</b> (3)").wait_for()  # as characters
        with page.expect_download() as download:
            page.locator("#export-conv").click()
        exported = Path(download.value.path()).read_text(encoding="utf-8")
        assert exported.startswith("# Jane <b>notes</b>\n\n## Who is Jane Williams?")
        assert "**Sources**\n[1] tiktok-" in exported
        page.locator("#delete-conv").click()
        page.wait_for_function("() => document.querySelectorAll('#chat .answer').length === 0")
        page.locator("#conv-list").get_by_text("Jane <b>notes</b>").wait_for(state="detached")
        assert page.locator("#conv-list").get_by_text("Who is Alex Turner? (1)").count() == 1
    finally:
        context.close()


def test_the_trash_icon_and_new_conversation_really_clear(chat: Watched):
    page = chat.page
    _ask(page, "Who is Alex Turner?")
    page.locator("#clear").click()
    page.wait_for_function("() => document.querySelectorAll('#chat .answer').length === 0")
    answer = _ask(page, "What is his expertise?")  # no history left: "his" finds nobody in particular
    assert page.locator("#chat .q-text").all_inner_texts() == ["What is his expertise?"]
    assert answer.count() == 1


def test_copy_gives_plain_text_with_the_sources(browser, server: Server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url.rstrip("/"))
    try:
        page = _open(browser, server.url, context=context).page
        answer = _ask(page, FAQ)
        answer.locator("a.copy").click()
        answer.locator("a.copy", has_text="Copied").wait_for()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert "<" not in copied and "Sources:\n[1] tiktok-hires-amazon-and-meta-veterans.txt" in copied
        assert re.search(r'\n\[2\] tiktok-[^\n]*: "[^"]{20,}"', copied)
        assert copied.splitlines()[0].endswith("[1]") or "[1]" in copied.splitlines()[0]
    finally:
        context.close()


def test_thumbs_down_is_stored_with_its_comment_and_exported(chat: Watched, server: Server, tmp_path: Path):
    from assistant.conversations import ConversationStore
    from assistant.evaluate.feedback import export_feedback

    page = chat.page
    answer = _ask(page, "Is the TikTok Shop profitable?")
    answer.locator("a.fb-down").click()
    page.locator("#feedback-line").get_by_text("marked not helpful").wait_for()
    page.locator("#comment textarea").fill("It should say whether it makes money.")
    page.locator("#send-comment").click()
    page.locator("#feedback-line").get_by_text("Comment saved").wait_for()
    assert page.locator("#chat .answer a.fb-down.chosen").count() == 1
    store = ConversationStore(server.assistant.settings.chat_db_path)
    rated = [t for _, t in store.thumbs_down() if t.question == "Is the TikTok Shop profitable?"]
    assert len(rated) == 1 and rated[0].comment == "It should say whether it makes money."
    out = tmp_path / "drafts.jsonl"
    export_feedback(server.assistant.settings.chat_db_path, out)
    drafts = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    mine = [d for d in drafts if d["question"] == "Is the TikTok Shop profitable?"]
    assert mine and mine[0]["gold_quotes"] == [] and "draft" in mine[0]
    assert mine[0]["comment"] == "It should say whether it makes money."


def test_stop_ends_a_streaming_answer_and_nothing_is_saved(browser, server: Server):
    from assistant.app import Assistant
    from assistant.conversations import ConversationStore
    from assistant.ui.app import launch

    from .openai_server import Reply, serve

    words = [f"word{i} " for i in range(200)]
    with serve(Reply(content=words, piece_delay=0.05)) as llm:
        base = server.assistant
        settings = base.settings.replace(llm_base_url=llm.base_url, llm_model="test-model")
        demo = launch(Assistant(settings, base.retriever), host="127.0.0.1", port=_free_port(), block=False,
                      quiet=True)
        w = _open(browser, demo.local_url)
        try:
            page = w.page
            page.locator("#llm-status").get_by_text("LLM: ok: test-model").wait_for()
            page.locator("#mode").get_by_text("LLM: writes an answer").click()
            page.locator("#question textarea").fill("Who joined TikTok from Amazon?")
            page.locator("#question textarea").press("Enter")
            page.locator("#chat .streaming", has_text="word10").wait_for()
            page.locator("#stop").click()
            page.locator("#chat .stopped-note").wait_for()
            shown = page.locator("#chat .answer-text.stopped").inner_text()
            page.wait_for_timeout(1500)  # the stream would have gone on meanwhile
            assert "word10" in shown and "word199" not in page.locator("#chat").inner_text()
            assert page.locator("#chat .answer").count() == 0
            store = ConversationStore(settings.chat_db_path)
            assert not any(t.question == "Who joined TikTok from Amazon?"
                           for c in store.thumbs_down() for t in [c[1]])
            page.locator("#mode").get_by_text("Extractive").click()
            assert "Alex Turner" in _ask(page, "Who is Alex Turner?").inner_text()  # the chat goes on
        finally:
            w.page.context.close()
            demo.close()


def test_regenerate_answers_the_last_question_again(chat: Watched):
    page = chat.page
    _ask(page, "Who is Alex Turner?")
    page.locator("#regenerate").click()
    page.wait_for_timeout(300)
    page.locator("#chat .answer").first.wait_for()
    _settled(page)
    assert page.locator("#chat .q-text").all_inner_texts() == ["Who is Alex Turner?"]
    assert page.locator("#chat .answer").count() == 1


def test_unanswerable_question_keeps_not_found_in_view_and_folds_the_closest_passages(chat: Watched):
    page = chat.page
    for q in ("Who is Alex Turner?", "What is his expertise?"):
        _ask(page, q)  # a conversation long enough to scroll
    answer = _ask(page, "What is the capital of France?")
    assert "Not found in the documents" in answer.inner_text()
    _wait_in_viewport(page, "#chat .answer.is-abstained .abstained")
    closest = answer.locator("details.closest")
    assert closest.get_attribute("open") is None and "closest passages (3)" in closest.inner_text().lower()
    assert answer.locator("a.cite").count() == 0


def test_retrieved_passages_accordion_lists_scores(chat: Watched):
    page = chat.page
    _ask(page, FAQ)
    page.locator("#hits-acc").get_by_text("Retrieved passages and scores").click()
    rows = page.locator("#hits table.hits tbody tr")
    rows.first.wait_for()
    assert rows.count() == 5  # settings.k
    assert re.fullmatch(r"0\.\d{4}", rows.first.locator("td").nth(1).inner_text())


def test_phone_opens_on_the_chat_and_shows_the_answer(browser, server: Server):
    w = _open(browser, server.url, **PHONE)
    try:
        page = w.page
        assert page.evaluate("window.scrollY") == 0  # not scrolled down to the question box
        page.wait_for_function("() => !document.querySelector('#sidebar.open')")  # the list folds away
        answer = _ask(page, FAQ)
        _wait_in_viewport(page, "#chat .answer-text")
        assert answer.locator("a.cite").count() >= 1
        on_top = page.evaluate("""() => {
            const r = document.querySelector('#chat .answer-text').getBoundingClientRect();
            const el = document.elementFromPoint(r.left + 10, r.top + 5); return !!el.closest('#chat .answer'); }""")
        assert on_top  # seen, not covered by the conversation list
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1, width  # nothing wider than the phone: tables scroll inside their box
    finally:
        w.page.context.close()


def test_uploaded_document_is_indexed_and_answers(chat: Watched, server: Server):
    page = chat.page
    status = _upload(page, [("../Zephyr Bakery.txt", BAKERY.encode()), ("empty.txt", b"  \n")])
    assert "Added Zephyr_Bakery.txt: 1 passages indexed" in status
    assert "Not added: empty.txt" in status and "empty" in status
    assert (server.docs / "Zephyr_Bakery.txt").is_file()
    assert not (server.docs.parent / "Zephyr Bakery.txt").exists()
    page.locator("#docs-table").get_by_text("Zephyr_Bakery.txt").first.wait_for()

    page.get_by_role("tab", name="Chat").click()
    answer = _ask(page, "Who founded the Zephyr Bakery?")
    assert "Ingrid Solberg" in answer.inner_text()
    assert "Zephyr_Bakery.txt" in answer.locator("details.source .doc").all_inner_texts()


def test_a_broken_upload_shows_its_reason_and_no_check_mark(chat: Watched, server: Server):
    page = chat.page
    status = _upload(page, [("minutes.docx", b"PK\x03\x04 this is not a Word file"),
                            ("slides.pptx", b"hello")])
    assert "✓" not in status
    assert "Not added: minutes.docx: not a valid Word file" in status
    assert "Not added: slides.pptx: not a valid PowerPoint file" in status
    assert not (server.docs / "minutes.docx").exists()  # nothing left behind, invisible


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


def test_remove_asks_excludes_and_keeps_the_file_unless_confirmed(chat: Watched, server: Server):
    page = chat.page
    walrus = b"# Temporary\n\nThe walrus counted forty-two pebbles on Tuesday.\n"
    _upload(page, [("to-remove.md", walrus)])
    table = page.locator("#docs-table")
    table.get_by_text("to-remove.md").first.wait_for()

    _choose(page, "tiktok-shop-shifts-control-to-china.txt")  # a file of the folder, not an upload
    page.locator("#remove-doc").click()
    page.locator("#confirm-yes").wait_for()
    assert "Its file stays in the documents folder" in page.locator("#confirm-text").inner_text()
    assert "cannot be deleted from here" in page.locator("#confirm-text").inner_text()
    assert page.locator("#delete-file input").count() == 0 or not page.locator("#delete-file input").is_visible()
    page.locator("#confirm-no").click()
    page.locator("#confirm-yes").wait_for(state="hidden")
    assert "tiktok-shop-shifts-control-to-china.txt" in {d.path for d in server.assistant.documents()}

    page.locator("#remove-doc").click()
    page.locator("#confirm-yes").click()
    page.locator("#doc-status").get_by_text("the file stays in the documents folder").wait_for()
    row = table.locator("tr", has_text="tiktok-shop-shifts-control-to-china.txt")
    row.get_by_text("excluded").first.wait_for()
    assert (server.docs / "tiktok-shop-shifts-control-to-china.txt").is_file()
    assert "tiktok-shop-shifts-control-to-china.txt" not in {d.path for d in server.assistant.documents()}
    page.locator("#include-doc").click()  # back, for the other tests
    page.locator("#doc-status").get_by_text("Included tiktok-shop-shifts-control-to-china.txt again").wait_for()
    assert "tiktok-shop-shifts-control-to-china.txt" in {d.path for d in server.assistant.documents()}

    _choose(page, "to-remove.md")  # uploaded through the chat: it may be deleted, if asked for
    page.locator("#remove-doc").click()
    page.locator("#delete-file input").check()
    page.locator("#confirm-yes").click()
    page.locator("#doc-status").get_by_text("Deleted to-remove.md").wait_for()
    assert not (server.docs / "to-remove.md").exists()
    assert table.get_by_text("to-remove.md").count() == 0
    assert all(d.path != "to-remove.md" for d in server.assistant.documents())


def test_documents_can_be_filtered_and_sorted(chat: Watched):
    page = chat.page
    page.get_by_role("tab", name="Documents").click()
    table = page.locator("#docs-table")
    table.get_by_text("survey.pdf").first.wait_for()
    page.locator("#doc-filter textarea, #doc-filter input").first.fill("pdf")
    page.wait_for_function("() => !document.querySelector('#docs-table').innerText.includes('lighthouse.html')")
    assert table.locator("tbody tr").count() == 1 and "survey.pdf" in table.inner_text()
    page.locator("#doc-filter textarea, #doc-filter input").first.fill("")
    page.wait_for_function("() => document.querySelector('#docs-table').innerText.includes('lighthouse.html')")
    names = table.locator("tbody td.path").all_inner_texts()
    assert names == sorted(names, key=str.lower)


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
    n = int(answer.locator("details.source", has_text="quokka.txt").first.get_attribute("id").rsplit("-", 1)[1])
    _open_source(page, answer, n, "quokka.txt")
    in_pane = page.locator("#source-pane").inner_text()
    assert "<script>window.__xss='script';alert('xss')</script>" in in_pane and PAYLOAD_TITLE in in_pane

    page.wait_for_timeout(500)  # give any injected handler the chance to run
    assert chat.dialogs == []
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("b[onmouseover]").count() == 0
    scripts = page.evaluate("[...document.scripts].map(s => s.textContent)")
    assert not any("__xss" in s or "alert(" in s for s in scripts)
    assert page.locator("#chat [onerror], #chat [onmouseover], #hits [onerror], #docs-table [onerror], "
                        "#source-pane [onerror], #source-pane [onmouseover]").count() == 0


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


def test_llm_settings_in_the_page_never_show_the_key_back(browser, server: Server):
    from assistant.app import Assistant
    from assistant.ui.app import launch

    from .openai_server import serve

    with serve("Jane Williams joined TikTok from Amazon [1].", api_key="sk-secret-123") as llm:
        demo = launch(Assistant(server.assistant.settings, server.assistant.retriever), host="127.0.0.1",
                      port=_free_port(), block=False, quiet=True)
        w = _open(browser, demo.local_url)
        try:
            page = w.page
            # A second chat server in this process renders its first page slowly on a loaded machine.
            page.locator("#llm-status").get_by_text("LLM: not configured").wait_for(timeout=3 * TIMEOUT_MS)
            page.locator("#settings").get_by_text("Settings").first.click()
            page.locator("#llm-url input, #llm-url textarea").first.fill(llm.base_url)
            page.locator("#llm-model input, #llm-model textarea").first.fill("test-model")
            page.locator("#llm-key input").fill("sk-secret-123")
            page.locator("#save-llm").click()
            status = page.locator("#llm-status").get_by_text(re.compile(r"LLM: (?:ok|unreachable)"))
            status.wait_for(timeout=3 * TIMEOUT_MS)  # the save checks the endpoint first
            line = page.locator("#llm-status").inner_text()
            assert "LLM: ok: test-model" in line, line
            assert f"at {llm.base_url}" in line  # no "127\\.0" escapes
            assert page.locator("#llm-key input").input_value() == ""
            assert "set (hidden)" in (page.locator("#llm-key input").get_attribute("placeholder") or "")
            assert "sk-secret-123" not in page.content()
            page.locator("#mode").get_by_text("LLM: writes an answer").click()
            answer = _ask(page, "Who joined TikTok from Amazon?")
            assert "llm answer" in answer.inner_text()
            assert llm.chat_requests[-1].headers.get("Authorization") == "Bearer sk-secret-123"
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
