"""The source pane's HTML: the document as readable blocks, every character escaped, the quotes marked at
exactly their offsets, a PDF shown page by page, a long document cut around the quote."""

from __future__ import annotations

import re
from html import unescape

from assistant.load import load_bytes
from assistant.records import Citation, Document
from assistant.ui import pane
from assistant.ui.render import conversation_markdown, plain_answer

MD = (b"# Field notes <script>alert(1)</script>\n\nThe quokka lives on Rottnest Island <img src=x onerror=alert(2)>.\n"
      b"It is about the size of a cat.\n\n## Diet\n\n| Food | Share |\n|---|---|\n| Leaves | 70% |\n\n"
      b"```\nprint('<b>not bold</b>')\n```\n")


def _cite(doc: Document, n: int, quote: str) -> Citation:
    start = doc.text.index(quote)
    return Citation(n, doc.path, start, start + len(quote), quote, doc.heading_path(start), doc.page_at(start))


def _marks(html: str) -> list[tuple[str, str]]:
    return [(m.group(1), unescape(re.sub(r"<[^>]+>", "", m.group(2))))
            for m in re.finditer(r'<mark class="([^"]+)"[^>]*>(.*?)</mark>', html, re.S)]


def test_blocks_are_rendered_and_everything_is_escaped() -> None:
    doc = load_bytes("notes.md", MD)
    active = _cite(doc, 1, "The quokka lives on Rottnest Island <img src=x onerror=alert(2)>.")
    other = _cite(doc, 2, "70%")
    html = pane.render_pane(doc, [active, other], active, (1, 2))
    assert "<script>" not in html and "<img" not in html and "<b>not bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    assert '<h2 class="heading">Field notes &lt;script&gt;' in html and '<h3 class="heading">Diet</h3>' in html
    assert "<table" in html and "<td>Leaves</td>" in html and '<pre class="code">' in html
    assert _marks(html) == [("quote active", active.quote), ("quote", "70%")]
    assert html.count('id="pane-active"') == 1
    assert "citation 1 of 2" in html and '<span class="where">Diet</span>' not in html.split("</nav>")[0]


def test_a_quote_across_lines_and_blocks_is_marked_whole() -> None:
    doc = load_bytes("notes.md", MD)
    active = _cite(doc, 1, "alert(2)>.\nIt is about the size of a cat.\n\n## Diet")
    html = pane.render_pane(doc, [active], active, (1, 1))
    assert "".join(text for _, text in _marks(html)).replace("\n", "") == active.quote.replace("\n", "").replace(
        "## ", "")


def test_a_pdf_shows_the_page_of_the_quote() -> None:
    text = "First page words.\n\nSecond page: the harbour seal sleeps on the pier.\n\nThird page."
    doc = Document("seals.pdf", text, "0", "Seals", pages=(0, 19, 71))
    active = _cite(doc, 1, "the harbour seal sleeps on the pier.")
    html = pane.render_pane(doc, [active], active, (1, 1))
    assert "page 2 of 3" in html and "First page" not in html and "Third page" not in html
    assert _marks(html) == [("quote active", active.quote)]


def test_a_long_document_is_cut_around_the_quote(monkeypatch) -> None:
    monkeypatch.setattr(pane, "MAX_PANE_CHARS", 2000)
    text = "".join(f"Filler sentence number {i}.\n\n" for i in range(2000)) + "The needle is here.\n"
    doc = Document("big.txt", text, "0")
    active = _cite(doc, 1, "The needle is here.")
    html = pane.render_pane(doc, [active], active, (1, 1))
    assert len(html) < 10_000 and "characters before" in html
    assert _marks(html) == [("quote active", active.quote)]


def test_a_changed_document_says_so_and_still_shows_the_quote() -> None:
    doc = load_bytes("notes.md", MD)
    stale = Citation(1, "notes.md", 5, 30, "A sentence that is no longer there <b>.")
    html = pane.render_pane(doc, [stale], stale, (1, 1))
    assert "The document changed since this answer" in html and "&lt;b&gt;" in html
    assert 'id="pane-active"' not in html


def test_plain_text_copy_and_markdown_export_list_the_sources() -> None:
    from assistant.records import Answer

    doc = load_bytes("notes.md", MD)
    c = _cite(doc, 1, "It is about the size of a cat.")
    answer = Answer("How big is a quokka?", "It is about the size of a cat. [1]", (c,), False, ())
    assert plain_answer(answer) == ('It is about the size of a cat. [1]\n\nSources:\n'
                                    '[1] notes.md › Field notes <script>alert(1)</script>: '
                                    '"It is about the size of a cat."')
    md = conversation_markdown("Quokkas", [(answer.question, answer)])
    assert md.startswith("# Quokkas\n\n## How big is a quokka?\n\nIt is about the size of a cat. [1]")
    assert "**Sources**\n[1] notes.md" in md
