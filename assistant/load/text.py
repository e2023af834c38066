"""Plain-text formats (.txt, .md, .markdown, .rst, .rst.txt, .adoc, .asciidoc): decode, keep the text exactly,
find headings."""

from __future__ import annotations

import codecs

from ..records import Document, Section
from .headings import asciidoc_sections, markdown_sections, plain_sections, rst_sections

_TITLE_MAX = 120
_MESS_OK = 0.4  # charset_normalizer mess ratio under which a cp1252 reading is accepted


def decode_text(data: bytes) -> str:
    """UTF-8 (a byte-order mark is dropped), else the best guess among cp1252 and what charset_normalizer
    proposes, else latin-1, which never fails."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32"),
                       (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
                       (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            body = data[len(bom):] if codec == "utf-8" else data  # utf-16/32 codecs consume the BOM
            return body.decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _guess(data)


def _guess(data: bytes) -> str:
    # charset_normalizer alone often reads short Western text as cp1250 or cp1006 ("naïve" -> "naďve"), so
    # cp1252 is preferred whenever it reads the bytes without mess; Cyrillic, Greek or Central European
    # text read as cp1252 scores a mess ratio of about 1 and goes to charset_normalizer's pick.
    import charset_normalizer

    try:
        western: str | None = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    best = charset_normalizer.from_bytes(data).best()
    if western is not None:
        try:
            from charset_normalizer.md import mess_ratio

            mess = mess_ratio(western, 1.0)
        except ImportError:  # a private module; without it, trust charset_normalizer
            mess = 1.0 if best is not None else 0.0
        if best is None or mess <= max(best.chaos, _MESS_OK):
            return western
    if best is not None:
        return str(best)
    return data.decode("latin-1")


def load_text(rel: str, data: bytes, sha256: str, kind: str) -> Document:
    """A Document whose text is the decoded file, unchanged, with the headings `kind` calls for."""
    text = decode_text(data)
    if kind == "markdown":
        sections = markdown_sections(text)
    elif kind == "rst":
        sections = rst_sections(text)
    elif kind == "asciidoc":
        sections = asciidoc_sections(text)
    else:
        sections = plain_sections(text)
    return Document(path=rel, text=text, sha256=sha256, title=pick_title(text, sections, rel),
                    sections=sections)


def pick_title(text: str, sections: tuple[Section, ...], rel: str) -> str:
    """The first level-1 heading, else a heading on the first non-empty line, else that line, else the
    file's stem."""
    for s in sections:
        if s.level == 1:
            return clip(s.title)
    stripped = text.lstrip()
    if not stripped:
        return stem(rel)
    first_start = len(text) - len(stripped)
    first_end = text.find("\n", first_start)
    first_end = len(text) if first_end < 0 else first_end
    if sections and first_start <= sections[0].start < first_end:
        return clip(sections[0].title)
    return clip(text[first_start:first_end])


def clip(s: str, limit: int = _TITLE_MAX) -> str:
    """`s` on one line with single spaces, cut at a word boundary to at most `limit` characters."""
    s = " ".join(s.split())
    if len(s) <= limit:
        return s
    cut = s[: limit - 1]
    if " " in cut[limit // 2:]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-") + "…"


def stem(rel: str) -> str:
    name = rel.rsplit("/", 1)[-1]
    lower = name.lower()
    for suffix in (".rst.txt", ".markdown", ".asciidoc", ".html", ".htm", ".txt", ".md", ".rst", ".pdf", ".docx",
                   ".pptx", ".ipynb", ".epub", ".adoc"):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name
