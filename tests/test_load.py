"""Loaders: scanning a folder, and text, Markdown, reStructuredText, HTML and PDF files into Documents."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from assistant.errors import DocumentError
from assistant.load import SUPPORTED_SUFFIXES, Skipped, SourceFile, load_bytes, load_file, looks_binary, scan_folder
from assistant.load import scan as scan_module
from assistant.records import Document

# --- helpers --------------------------------------------------------------------------------------------


def _pdf_string(s: str) -> str:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[list[str]], title: str | None = None, outline: list[tuple[str, int]] = ()) -> bytes:
    """A minimal valid PDF: one Helvetica text line per string on each page, an optional /Title and
    optional top-level bookmarks (title, 0-based page)."""
    n_pages = len(pages)
    # Object numbers: 1 catalog, 2 page tree, 3 font, then page i at 4 + 2i and its content at 5 + 2i,
    # then the info dictionary, the outline root and its items.
    info_num = 4 + 2 * n_pages
    outline_num = info_num + 1
    objects: dict[int, bytes] = {}
    catalog = "<< /Type /Catalog /Pages 2 0 R"
    if outline:
        catalog += f" /Outlines {outline_num} 0 R"
    objects[1] = (catalog + " >>").encode()
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n_pages))
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode()
    objects[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in lines:
            ops.append(f"({_pdf_string(line)}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects[4 + 2 * i] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                              f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>").encode()
        objects[5 + 2 * i] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    if title is not None:
        objects[info_num] = f"<< /Title ({_pdf_string(title)}) /Producer (test_load) >>".encode()
    if outline:
        first, last = outline_num + 1, outline_num + len(outline)
        objects[outline_num] = (f"<< /Type /Outlines /First {first} 0 R /Last {last} 0 R "
                                f"/Count {len(outline)} >>").encode()
        for k, (name, page) in enumerate(outline):
            num = outline_num + 1 + k
            links = (f" /Prev {num - 1} 0 R" if k else "") + (f" /Next {num + 1} 0 R" if num < last else "")
            objects[num] = (f"<< /Title ({_pdf_string(name)}) /Parent {outline_num} 0 R{links} "
                            f"/Dest [{4 + 2 * page} 0 R /XYZ 0 792 0] >>").encode()
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    size = max(objects) + 1
    offsets = [0] * size
    for num in sorted(objects):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objects[num] + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n" % size
    out += b"0000000000 65535 f \n"
    for num in range(1, size):
        out += (b"%010d 00000 n \n" % offsets[num]) if num in objects else b"0000000000 65535 f \n"
    trailer = f"<< /Size {size} /Root 1 0 R" + (f" /Info {info_num} 0 R" if title is not None else "") + " >>"
    out += b"trailer\n" + trailer.encode() + b"\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def write(root: Path, rel: str, data: bytes | str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_bytes(data.encode("utf-8"))
    else:
        path.write_bytes(data)
    return path


def load(tmp_path: Path, rel: str, data: bytes | str) -> Document:
    path = write(tmp_path, rel, data)
    raw = path.read_bytes()
    return load_file(SourceFile(path, rel, hashlib.sha256(raw).hexdigest(), len(raw)))


def heading_at(doc: Document, title: str) -> int:
    """Check the Section titled `title` points at its own text, and return its level."""
    matches = [s for s in doc.sections if s.title == title]
    assert matches, f"no section {title!r} in {[s.title for s in doc.sections]}"
    s = matches[0]
    assert doc.text[s.start:s.start + len(title)] == title
    return s.level


# --- plain text -----------------------------------------------------------------------------------------

ARTICLE = (
    "TikTok Adds Veterans From Amazon and Meta\r\n\r\n"
    "In a surprising move, the social media giant has enlisted industry veterans. It wants growth.\r\n\r\n"
    "The New Faces at TikTok\r\n\r\n"
    "1. The Amazon Connection\r\n\r\n"
    "TikTok has brought onboard Jane Williams, a former executive at Amazon.\r\n\r\n"
    "2. The Meta Influence\r\n\r\n"
    "Joining Williams is Alex Turner, a veteran from Meta.\r\n\r\n"
    "Thanks for reading!\r\n\r\n"
    "Challenges on the Horizon\r\n\r\n"
    "Privacy concerns are paramount. Users must trust   the   app.\r\n"
)


def test_txt_text_is_the_file_exactly_with_headings(tmp_path: Path) -> None:
    doc = load(tmp_path, "news/article.txt", ARTICLE)
    assert doc.text == ARTICLE  # CRLF and repeated spaces untouched: citations quote text[start:end]
    assert doc.path == "news/article.txt"
    assert doc.sha256 == hashlib.sha256(ARTICLE.encode()).hexdigest()
    assert doc.title == "TikTok Adds Veterans From Amazon and Meta"
    assert heading_at(doc, "TikTok Adds Veterans From Amazon and Meta") == 1
    assert heading_at(doc, "The New Faces at TikTok") == 2
    assert heading_at(doc, "1. The Amazon Connection") == 3
    assert heading_at(doc, "Challenges on the Horizon") == 2
    assert "Thanks for reading!" not in [s.title for s in doc.sections]
    offset = doc.text.index("Jane Williams")
    assert doc.heading_path(offset) == (
        "TikTok Adds Veterans From Amazon and Meta", "The New Faces at TikTok", "1. The Amazon Connection")
    assert doc.pages == () and doc.page_at(offset) is None


def test_txt_without_headings_takes_its_first_line_as_title(tmp_path: Path) -> None:
    first = "TikTok initially hired many former Amazon employees to build its US e-commerce platform, " * 2
    doc = load(tmp_path, "a.txt", f"\n\n  {first}\nMore text follows here.\n")
    assert doc.sections == ()
    assert doc.title.startswith("TikTok initially hired") and len(doc.title) <= 120


def test_a_list_of_short_lines_is_not_a_list_of_headings(tmp_path: Path) -> None:
    doc = load(tmp_path, "names.txt", "Alice Smith\n\nBob Jones\n\nCarol White\n\nDan Brown\n\nEve Black\n")
    assert doc.sections == ()


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    doc = load(tmp_path, "bom.txt", b"\xef\xbb\xbfCaf\xc3\xa9 au lait\n")
    assert doc.text == "Café au lait\n"


@pytest.mark.parametrize(("encoding", "text"), [
    ("cp1252", "The café’s “naïve” crème brûlée costs 5 € — cheap.\n"),
    ("latin-1", "Über Straße\n"),
    ("latin-1", "El niño comió piñata en España, ¿verdad? ¡Sí! Temperatura: 21 °C ± 2.\n" * 20),
])
def test_legacy_encodings_decode_correctly(tmp_path: Path, encoding: str, text: str) -> None:
    data = text.encode(encoding)
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert load(tmp_path, "legacy.txt", data).text == text


def test_utf16_with_bom_is_text_not_binary(tmp_path: Path) -> None:
    write(tmp_path, "wide.txt", "Hello wide world\n".encode("utf-16"))
    files, skipped = scan_folder(tmp_path)
    assert [f.rel for f in files] == ["wide.txt"] and skipped == []
    assert load_file(files[0]).text == "Hello wide world\n"


# --- Markdown and reStructuredText ----------------------------------------------------------------------

MARKDOWN = """---
title: front matter
---
# Install Guide

Intro paragraph.

Setup
-----

```bash
# not a heading
echo hi
```

### Step one ###

Overview
========
"""


def test_markdown_headings(tmp_path: Path) -> None:
    doc = load(tmp_path, "guide.md", MARKDOWN)
    assert doc.text == MARKDOWN
    assert [(s.level, s.title) for s in doc.sections] == [
        (1, "Install Guide"), (2, "Setup"), (3, "Step one"), (1, "Overview")]
    for s in doc.sections:
        heading_at(doc, s.title)
    assert doc.title == "Install Guide"
    assert doc.heading_path(doc.text.index("echo hi")) == ("Install Guide", "Setup")


RST = """:tocdepth: 2

==================
General Python FAQ
==================

General Information
===================

What is Python?
---------------

Python is a language. For example::

    Not a title
    -----------

Another question
----------------

Text.

Second part
===========
"""


@pytest.mark.parametrize("rel", ["faq/general.rst.txt", "faq/general.rst", "faq/general.RST.TXT"])
def test_rst_headings_take_levels_in_order_of_appearance(tmp_path: Path, rel: str) -> None:
    doc = load(tmp_path, rel, RST)
    assert doc.text == RST
    assert [(s.level, s.title) for s in doc.sections] == [
        (1, "General Python FAQ"), (2, "General Information"), (3, "What is Python?"),
        (3, "Another question"), (2, "Second part")]
    for s in doc.sections:
        heading_at(doc, s.title)
    assert doc.title == "General Python FAQ"


# --- HTML -----------------------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html><head><title>Numeric &amp; Types</title>
<style>body { color: red } .secret-style {}</style>
<script>alert(1)</script></head>
<body>
<div class="navheader"><a href="prev.html">Prev</a> Navigation header text</div>
<nav>Site menu text</nav>
<div class="sphinxsidebar">Sidebar text</div>
<div class="related">Related links text</div>
<div class="body" role="main">
<h1>Numeric Types<a class="headerlink" href="#x">¶</a></h1>
<p>Numbers   come in
   <b>several</b> kinds &lt;int&gt; &mdash; see below.<script>document.write("injected")</script></p>
<noscript>Enable JavaScript text</noscript>
<h2 id="int">Integer <code>int</code> type</h2>
<ul><li><p>first item</p></li><li>second item</li></ul>
<ol><li>one</li><li>two</li></ol>
<table><tr><th>Name</th><th>Size</th></tr><tr><td>smallint</td><td>2 bytes</td></tr></table>
<pre>def f(x):
    return  x &lt; 1
</pre>
<p>Line one<br>line two</p>
</div>
<div class="navfooter">Footer navigation text</div>
<footer>Copyright footer text</footer>
</body></html>
"""


def test_html_keeps_main_text_and_drops_everything_else(tmp_path: Path) -> None:
    doc = load(tmp_path, "docs/page.html", PAGE)
    for unwanted in ("alert", "injected", "color: red", "secret-style", "Navigation header", "Site menu",
                     "Sidebar text", "Related links", "Enable JavaScript", "Footer navigation",
                     "Copyright footer", "¶", "<", "&amp;"):
        assert unwanted not in doc.text.replace("<int>", "").replace("x < 1", ""), unwanted
    assert doc.title == "Numeric & Types"
    assert doc.text.startswith("Numeric Types\n\nNumbers come in several kinds <int> — see below.\n\n")
    assert [(s.level, s.title) for s in doc.sections] == [(1, "Numeric Types"), (2, "Integer int type")]
    for s in doc.sections:
        heading_at(doc, s.title)
    assert "- first item\n- second item" in doc.text
    assert "1. one\n2. two" in doc.text
    assert "Name | Size\nsmallint | 2 bytes" in doc.text
    assert "def f(x):\n    return  x < 1\n\nLine one\nline two" in doc.text  # <pre> verbatim
    assert doc.heading_path(doc.text.index("smallint")) == ("Numeric Types", "Integer int type")


REFERENCE = """<html><body><div class="toc"><dl class="toc"><dt><a href="#a">20.3.1. Settings</a></dt></dl></div>
<h2>20.3.1. Settings</h2>
<dl class="variablelist"><dt id="guc-port"><code>port</code> (<code>integer</code>)</dt>
<dd><p>The TCP port the server listens on; 5432 by default.</p>
<dl><dt><code>-p</code><br><code>--port</code></dt><dd><p>The option.</p></dd></dl></dd>
<dt><code>max_connections</code> (<code>integer</code>)</dt><dd><p>At most this many.</p></dd></dl>
<div class="tip"><h3 class="title">Tip</h3><p>A hint.</p></div>
<p>After the tip.</p>
<h2>Next</h2><p>Other text.</p></body></html>"""


def test_html_definition_terms_are_subsections_and_admonition_titles_are_not(tmp_path: Path) -> None:
    doc = load(tmp_path, "config.html", REFERENCE)
    assert [(s.level, s.title) for s in doc.sections] == [
        (2, "20.3.1. Settings"), (3, "port (integer)"), (4, "-p --port"), (3, "max_connections (integer)"),
        (2, "Next")]
    for s in doc.sections:
        assert doc.text.startswith(s.title.split()[0], s.start)
    assert doc.heading_path(doc.text.index("5432")) == ("20.3.1. Settings", "port (integer)")
    assert doc.heading_path(doc.text.index("The option")) == ("20.3.1. Settings", "port (integer)", "-p --port")
    assert "Tip" not in doc.heading_path(doc.text.index("After the tip"))
    assert "Tip\n\nA hint." in doc.text  # the box's title stays in the text
    assert doc.text.startswith("20.3.1. Settings\n\nport (integer)")  # the table of contents is gone


def test_a_page_that_is_only_a_table_of_contents_keeps_it(tmp_path: Path) -> None:
    doc = load(tmp_path, "part.html", '<html><head><title>Part I</title></head><body><div class="toc"><dl>'
               '<dt><a href="a.html">1. Getting Started</a></dt><dt><a href="b.html">2. The SQL Language</a></dt>'
               "</dl></div></body></html>")
    assert doc.text == "1. Getting Started\n2. The SQL Language"
    assert doc.sections == ()


def test_html_without_main_uses_body_and_first_h1_as_title(tmp_path: Path) -> None:
    html = ("<html><body><header>Site banner</header><article><header><h1>Story title</h1></header>"
            "<p>Story text.</p></article><aside>Ad text</aside></body></html>")
    doc = load(tmp_path, "story.htm", html)
    assert doc.title == "Story title"
    assert doc.text == "Story title\n\nStory text."


def test_html_encodings(tmp_path: Path) -> None:
    latin = '<html><head><meta charset="iso-8859-1"><title>Caf\xe9</title></head><body><p>Cr\xe8me \u20ac</p>'
    doc = load(tmp_path, "latin.html", latin.encode("cp1252"))
    assert (doc.title, doc.text) == ("Café", "Crème €")
    xhtml = ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
             '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "x.dtd"><html xmlns="http://www.w3.org/1999/xhtml"><head><title>SELECT'
             '</title></head><body><div class="refentry"><h2>SELECT</h2><p>retrieve rows — fast</p></div>'
             '</body></html>')
    doc = load(tmp_path, "x.html", xhtml)
    assert (doc.title, doc.text) == ("SELECT", "SELECT\n\nretrieve rows — fast")


def test_html_without_text_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"^empty\.html: no text$"):
        load(tmp_path, "empty.html", "<html><head><script>var x = 1;</script></head><body> </body></html>")


# --- PDF ------------------------------------------------------------------------------------------------


def test_pdf_pages_title_and_offsets(tmp_path: Path) -> None:
    data = make_pdf([["Annual Report 2023", "Revenue grew strongly."],
                     ["Costs (fixed) fell by 3 percent.", "Staff count rose."],
                     ["Outlook is stable."]],
                    title="The Annual Report", outline=[("Costs", 1), ("Outlook", 2)])
    doc = load(tmp_path, "reports/annual.pdf", data)
    assert doc.title == "The Annual Report"
    assert len(doc.pages) == 3 and doc.pages[0] == 0
    for n, phrase in [(1, "Revenue grew"), (2, "Costs (fixed) fell"), (2, "Staff count"), (3, "Outlook is")]:
        assert doc.page_at(doc.text.index(phrase)) == n, phrase
    assert doc.text[doc.pages[1]:].startswith("Costs (fixed)")
    assert doc.text[doc.pages[1] - 2:doc.pages[1]] == "\n\n"
    assert [(s.level, s.title) for s in doc.sections] == [(1, "Costs"), (1, "Outlook")]
    assert doc.page_at(doc.sections[1].start) == 3


def test_pdf_title_falls_back_to_first_line(tmp_path: Path) -> None:
    doc = load(tmp_path, "memo.pdf", make_pdf([[], ["Memo to staff", "Please read."]]))
    assert doc.title == "Memo to staff"
    assert doc.page_at(doc.text.index("Please")) == 2


def test_pdf_from_matplotlib(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    buf = io.BytesIO()
    with PdfPages(buf) as pdf:
        for n in (1, 2):
            fig = plt.figure()
            fig.text(0.1, 0.5, f"Chapter {n} text")
            pdf.savefig(fig)
            plt.close(fig)
    doc = load(tmp_path, "plots.pdf", buf.getvalue())
    assert doc.page_at(doc.text.index("Chapter 2 text")) == 2


def test_pdf_without_text_corrupt_or_encrypted_is_an_error(tmp_path: Path) -> None:
    import pypdf

    no_text = r"^scan\.pdf: no text layer \(a scanned PDF\?\): nothing to index without OCR$"
    with pytest.raises(DocumentError, match=no_text):
        load(tmp_path, "scan.pdf", make_pdf([[], []]))
    with pytest.raises(DocumentError, match=r"^broken\.pdf: unreadable PDF"):
        load(tmp_path, "broken.pdf", b"%PDF-1.4\nthis is not really a pdf\n")
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(make_pdf([["Secret plans"]]))))
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(DocumentError, match=r"^locked\.pdf: encrypted PDF"):
        load(tmp_path, "locked.pdf", out.getvalue())


# --- scanning and errors --------------------------------------------------------------------------------


def test_scan_folder_hashes_files_and_explains_skips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "docs"
    outside = write(tmp_path, "outside/secret.txt", "outside the root")
    write(root, "b.md", "# B\n")
    write(root, "a/notes.txt", "notes")
    write(root, "a/deep/page.HTML", "<p>hi</p>")
    write(root, "faq/general.rst.txt", RST)
    write(root, "report.pdf", make_pdf([["x"]]))
    write(root, "image.png", b"\x89PNG\r\n")
    write(root, "Makefile", "all:")
    write(root, "empty.txt", b"")
    write(root, "binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256)))
    write(root, ".hidden.txt", "hidden")
    write(root, ".git/config", "[core]")
    write(root, "locked.md", "# locked")
    os.symlink(outside, root / "escape.txt")
    os.symlink(root / "b.md", root / "alias.md")
    os.symlink(root / "a", root / "a-link")
    real_open = open

    def fake_open(path: object, *args: object, **kwargs: object) -> object:
        if str(path).endswith("locked.md"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(scan_module, "open", fake_open, raising=False)
    files, skipped = scan_folder(root)
    assert [f.rel for f in files] == [
        "a/deep/page.HTML", "a/notes.txt", "alias.md", "b.md", "faq/general.rst.txt", "report.pdf"]
    for f in files:
        assert f.path.is_absolute() and f.path == root.absolute() / f.rel
        raw = f.path.read_bytes()
        assert (f.sha256, f.size) == (hashlib.sha256(raw).hexdigest(), len(raw))
    assert skipped == [  # hidden files and folders (.git) are ignored without a word
        Skipped("Makefile", "unsupported type (no extension)"),
        Skipped("a-link", "symlink to a folder inside the folder"),
        Skipped("binary.txt", "binary file"),
        Skipped("empty.txt", "empty file"),
        Skipped("escape.txt", "symlink points outside the folder"),
        Skipped("image.png", "unsupported type .png"),
        Skipped("locked.md", "Permission denied"),
    ]
    assert set(SUPPORTED_SUFFIXES) == {".txt", ".md", ".markdown", ".rst", ".adoc", ".asciidoc", ".html", ".htm",
                                       ".pdf", ".docx", ".pptx", ".ipynb", ".epub"}


def test_scan_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DocumentError, match="no such folder") as info:
        scan_folder(missing)
    assert info.value.path == str(missing)


def test_a_bad_file_is_one_error_and_the_others_still_load(tmp_path: Path) -> None:
    write(tmp_path, "bad.pdf", b"%PDF-1.7 garbage")
    write(tmp_path, "bad.html", "<html><script>only()</script></html>")
    write(tmp_path, "good.txt", "Good text.")
    write(tmp_path, "good.html", "<p>Good page.</p>")
    files, _ = scan_folder(tmp_path)
    loaded, errors = [], []
    for f in files:
        try:
            loaded.append(load_file(f).path)
        except DocumentError as e:
            errors.append((e.path, str(e)))
    assert loaded == ["good.html", "good.txt"]
    assert [p for p, _ in errors] == ["bad.html", "bad.pdf"]
    assert all(msg.startswith(f"{p}: ") and "\n" not in msg for p, msg in errors)


def test_load_bytes_wraps_parser_surprises(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.load import html

    def boom(*args: object) -> None:
        raise RuntimeError("parser bug\nsecond line")

    monkeypatch.setattr(html, "load_html", boom)
    with pytest.raises(DocumentError, match=r"^x\.html: could not be parsed \(RuntimeError: parser bug\)$"):
        load_bytes("x.html", b"<p>hi</p>")
    with pytest.raises(DocumentError, match="unsupported type .odt"):
        load_bytes("x.odt", b"PK")
    with pytest.raises(DocumentError, match="binary file"):
        load_bytes("x.md", b"\x00\x01")


def test_a_stray_nul_byte_does_not_make_text_binary() -> None:
    doc = load_bytes("notes.txt", b"The meeting is on Tuesday.\x00 Bring the minutes.\n")
    assert "Bring the minutes." in doc.text
    assert looks_binary(bytes(range(256)) * 4)  # control bytes throughout: not text
    assert looks_binary(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert not looks_binary("naïve café, ünïcode text\n".encode() * 50 + b"\x00")


def test_files_over_max_file_mb_are_skipped_with_the_file_and_the_limit(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_bytes(b"word " * 300_000)  # 1.4 MB
    (tmp_path / "small.txt").write_bytes(b"word " * 10)
    files, skipped = scan_folder(tmp_path, max_mb=1)
    assert [f.rel for f in files] == ["small.txt"]
    assert skipped == [Skipped("big.txt", "1.4 MB, over the 1 MB limit (max_file_mb)")]


def test_missing_file_is_a_document_error(tmp_path: Path) -> None:
    src = SourceFile(tmp_path / "gone.txt", "gone.txt", "0" * 64, 1)
    with pytest.raises(DocumentError, match=r"^gone\.txt: No such file or directory$"):
        load_file(src)


# --- the real Debian documentation corpora --------------------------------------------------------------

PYTHON_SOURCES = Path("/usr/share/doc/python3.11/html/_sources")
POSTGRES_HTML = Path("/usr/share/doc/postgresql-doc-15/html")


def _corpus(root: Path) -> list[SourceFile]:
    if not root.is_dir():
        pytest.fail(f"{root} is missing: run `apt-get install python3.11-doc postgresql-doc-15`")
    files, _ = scan_folder(root)
    return files


def test_debian_python_and_postgresql_docs_all_load() -> None:
    python = _corpus(PYTHON_SOURCES)
    folders = {f.rel.split("/")[0] for f in python}
    assert {"faq", "tutorial", "howto"} <= folders
    postgres = [f for f in _corpus(POSTGRES_HTML) if f.rel.endswith(".html")]
    assert len(python) > 400 and len(postgres) > 1000
    failures = []
    for f in python + postgres[::8]:
        try:
            doc = load_file(f)
        except DocumentError as e:
            failures.append(str(e))
            continue
        if not doc.text.strip() or not doc.title:
            failures.append(f"{f.rel}: empty text or title")
        for s in doc.sections:
            if not doc.text.startswith(s.title.split()[0], s.start):
                failures.append(f"{f.rel}: section {s.title!r} does not point at its text")
    assert failures == []
    select = load_file(next(f for f in postgres if f.rel == "sql-select.html"))
    assert select.title == "SELECT" and "Prev" not in select.text[:200]
    assert "SELECT, TABLE, WITH — retrieve rows from a table or view" in select.text
