"""The formats real folders hold: .docx, .pptx, .ipynb, .epub, .adoc. Each loads with headings and tables,
answers a question with the real model with offsets into its loaded text (text[start:end] == quote), fails
with a one-line reason naming the file, and is bounded."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from assistant.errors import DocumentError
from assistant.load import compose, load_bytes, office

HOSTILE = "<script>alert('x')</script> <img src=x onerror=alert(1)>"


def make_docx() -> bytes:
    import docx

    d = docx.Document()
    d.core_properties.title = "Lighthouse keeping"
    d.add_heading("Lighthouse keeping", level=1)
    d.add_paragraph("The Skerry lighthouse was automated in 1998 after a century of keepers.")
    d.add_heading("Duties", level=2)
    d.add_paragraph(f"Keepers trimmed the wicks every evening. {HOSTILE}")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Shift", "Hours"
    table.cell(1, 0).text, table.cell(1, 1).text = "Night watch", "Ten"
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def make_pptx() -> bytes:
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    s1 = deck.slides.add_slide(deck.slide_layouts[1])
    s1.shapes.title.text = "Quarterly harvest"
    s1.placeholders[1].text = "The orchard picked 4,000 crates of cider apples this autumn."
    s2 = deck.slides.add_slide(deck.slide_layouts[5])
    s2.shapes.title.text = "Varieties"
    rows = s2.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(6), Inches(1)).table
    rows.cell(0, 0).text, rows.cell(0, 1).text = "Variety", "Crates"
    rows.cell(1, 0).text, rows.cell(1, 1).text = "Kingston Black", "1,200"
    buf = io.BytesIO()
    deck.save(buf)
    return buf.getvalue()


def make_ipynb() -> bytes:
    first = ["# Tide analysis\n", "\n", "The harbour tide gauge records a reading every six minutes."]
    code = ["import pandas as pd\n", "tides = pd.read_csv('gauge.csv')"]
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"language": "python"}},
          "cells": [{"cell_type": "markdown", "source": first},
                    {"cell_type": "code", "source": code,
                     "outputs": [{"output_type": "stream", "text": ["lots of numbers\n"]}]},
                    {"cell_type": "markdown",
                     "source": "## Findings\n\nSpring tides peak two days after the full moon."}]}
    return json.dumps(nb).encode()


def make_epub(extra: dict[str, bytes] | None = None) -> bytes:
    chapter = ("<?xml version='1.0' encoding='utf-8'?><html xmlns='http://www.w3.org/1999/xhtml'><head><title>{t}"
               "</title></head><body><h1>{t}</h1><p>{p}</p></body></html>")
    files = {
        "mimetype": b"application/epub+zip",
        "META-INF/container.xml": b"<?xml version='1.0'?><container version='1.0' "
                                  b"xmlns='urn:oasis:names:tc:opendocument:xmlns:container'><rootfiles>"
                                  b"<rootfile full-path='OEBPS/content.opf' "
                                  b"media-type='application/oebps-package+xml'/>"
                                  b"</rootfiles></container>",
        "OEBPS/content.opf": b"<?xml version='1.0'?><package xmlns='http://www.idpf.org/2007/opf' version='3.0'>"
                             b"<metadata xmlns:dc='http://purl.org/dc/elements/1.1/'><dc:title>Alpine Flora</dc:title>"
                             b"</metadata><manifest><item id='c1' href='one.xhtml' media-type='application/xhtml+xml'/>"
                             b"<item id='c2' href='two.xhtml' media-type='application/xhtml+xml'/></manifest>"
                             b"<spine><itemref idref='c1'/><itemref idref='c2'/></spine></package>",
        "OEBPS/one.xhtml": chapter.format(t="Edelweiss", p="Edelweiss grows on limestone ledges above two "
                                                            "thousand metres.").encode(),
        "OEBPS/two.xhtml": chapter.format(t="Gentians", p="The trumpet gentian flowers in early summer on acid "
                                                          "soils.").encode(),
        **(extra or {}),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


ADOC = b"""= Beekeeping handbook
:toc:

== Hives

A strong colony holds about fifty thousand worker bees in midsummer.

----
== not a heading: inside a listing block
----

=== Inspection

Inspect the brood frames every nine days during swarming season.
"""

FORMATS = {
    "lighthouse.docx": (make_docx, "When was the Skerry lighthouse automated?",
                        "The Skerry lighthouse was automated in 1998 after a century of keepers."),
    "harvest.pptx": (make_pptx, "How many crates of cider apples did the orchard pick?",
                     "The orchard picked 4,000 crates of cider apples this autumn."),
    "tides.ipynb": (make_ipynb, "When do spring tides peak?", "Spring tides peak two days after the full moon."),
    "flora.epub": (make_epub, "Where does edelweiss grow?",
                   "Edelweiss grows on limestone ledges above two thousand metres."),
    "bees.adoc": (lambda: ADOC, "How many worker bees does a strong colony hold?",
                  "A strong colony holds about fifty thousand worker bees in midsummer."),
}


def test_docx_headings_from_styles_and_tables_as_rows() -> None:
    doc = load_bytes("lighthouse.docx", make_docx())
    assert doc.title == "Lighthouse keeping"
    assert [(s.level, s.title) for s in doc.sections] == [(1, "Lighthouse keeping"), (2, "Duties")]
    assert "Shift | Hours\nNight watch | Ten" in doc.text
    at = doc.text.index("Keepers trimmed")
    assert doc.heading_path(at) == ("Lighthouse keeping", "Duties")
    assert all(doc.text[s.start:s.start + len(s.title)] == s.title for s in doc.sections)


def test_pptx_slide_titles_are_headings_and_slides_are_pages() -> None:
    doc = load_bytes("harvest.pptx", make_pptx())
    assert [s.title for s in doc.sections] == ["Slide 1: Quarterly harvest", "Slide 2: Varieties"]
    assert "Variety | Crates\nKingston Black | 1,200" in doc.text
    assert doc.page_at(doc.text.index("Kingston Black")) == 2 and doc.page_at(doc.text.index("orchard")) == 1
    assert doc.title == "Quarterly harvest"


def test_ipynb_markdown_and_code_cells_without_outputs() -> None:
    doc = load_bytes("tides.ipynb", make_ipynb())
    assert [(s.level, s.title) for s in doc.sections] == [(1, "Tide analysis"), (2, "Findings")]
    assert "```python\nimport pandas as pd\ntides = pd.read_csv('gauge.csv')\n```" in doc.text
    assert "lots of numbers" not in doc.text
    assert all(doc.text[s.start:].lstrip("# ").startswith(s.title) for s in doc.sections)


def test_epub_chapters_in_spine_order_with_the_book_title() -> None:
    doc = load_bytes("flora.epub", make_epub())
    assert doc.title == "Alpine Flora"
    assert doc.text.index("Edelweiss grows") < doc.text.index("trumpet gentian")
    assert [s.title for s in doc.sections] == ["Edelweiss", "Gentians"]
    assert all(doc.text[s.start:s.start + len(s.title)] == s.title for s in doc.sections)


def test_adoc_is_kept_exactly_with_its_section_titles() -> None:
    doc = load_bytes("bees.adoc", ADOC)
    assert doc.text == ADOC.decode()
    assert [(s.level, s.title) for s in doc.sections] == [(1, "Beekeeping handbook"), (2, "Hives"), (3, "Inspection")]


@pytest.mark.parametrize(("name", "data"), [
    ("bad.docx", b"PK\x03\x04 not really a zip"), ("bad.pptx", b"hello"), ("bad.epub", b"PK junk"),
    ("bad.ipynb", b"{not json"), ("list.ipynb", b"[1, 2, 3]"),
])
def test_a_broken_file_is_one_line_naming_it(name: str, data: bytes) -> None:
    with pytest.raises(DocumentError) as e:
        load_bytes(name, data)
    assert str(e.value).startswith(f"{name}: ") and "\n" not in str(e.value)


def test_drm_epub_is_refused_with_the_reason() -> None:
    drm = make_epub({"META-INF/encryption.xml": b"<encryption><EncryptedData/></encryption>"})
    with pytest.raises(DocumentError, match="encrypted EPUB"):
        load_bytes("locked.epub", drm)


def test_inputs_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(office, "MAX_SLIDES", 1)
    with pytest.raises(DocumentError, match="2 slides, over the 1 limit"):
        load_bytes("harvest.pptx", make_pptx())
    monkeypatch.setattr(compose, "MAX_UNZIPPED_MB", 0.001)
    with pytest.raises(DocumentError, match="inflates to"):
        load_bytes("lighthouse.docx", make_docx())


@pytest.mark.slow
def test_each_format_answers_with_offsets_into_its_loaded_text(tmp_path: Path, real_embedder) -> None:
    from assistant.app import Assistant
    from assistant.settings import Settings

    docs = tmp_path / "docs"
    docs.mkdir()
    for name, (make, _, _) in FORMATS.items():
        (docs / name).write_bytes(make())
    (docs / "broken.docx").write_bytes(b"PK\x03\x04 broken")  # one bad document stops nothing
    a = Assistant.open(Settings.load(env={}, docs_dir=docs, index_dir=tmp_path / "index"), embedder=real_embedder)
    assert a.last_build is not None and [s.rel for s in a.last_build.skipped] == ["broken.docx"]
    assert {d.path for d in a.documents()} == set(FORMATS)
    for name, (_, question, quote) in FORMATS.items():
        answer = a.ask(question)
        assert not answer.abstained, name
        cited = [c for c in answer.citations if c.source == name]
        assert cited, (name, answer.text)
        text = a.document_text(name)
        for c in cited:
            assert text[c.start:c.end] == c.quote
        assert any(quote in c.quote or c.quote in quote for c in cited), (name, [c.quote for c in cited])
