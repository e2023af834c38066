"""EPUB books: the chapters in reading order (the OPF spine), each read like an HTML page, joined by blank
lines; the book's title from its metadata. DRM-encrypted books are refused with that reason."""

from __future__ import annotations

import posixpath

from ..errors import DocumentError
from ..records import Document, Section
from .compose import TextBuilder, open_zip
from .text import clip, pick_title

MAX_CHAPTERS = 5_000
MAX_CHAPTER_MB = 20
_OPF = "{http://www.idpf.org/2007/opf}"
_DC = "{http://purl.org/dc/elements/1.1/}"


def load_epub(rel: str, data: bytes, sha256: str) -> Document:
    from lxml import etree

    from .html import load_html

    z = open_zip(rel, data, "EPUB")
    names = set(z.namelist())
    if "META-INF/encryption.xml" in names and b"EncryptedData" in z.read("META-INF/encryption.xml"):
        raise DocumentError(rel, "encrypted EPUB (DRM): its text cannot be read")
    safe = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        container = etree.fromstring(z.read("META-INF/container.xml"), safe)
        opf_path = container.find(".//{*}rootfile").get("full-path")
        opf = etree.fromstring(z.read(opf_path), safe)
    except (KeyError, AttributeError, etree.XMLSyntaxError) as e:
        raise DocumentError(rel, f"not a readable EPUB (no package document: {e})") from None
    base = posixpath.dirname(opf_path)
    items = {i.get("id"): i.get("href") for i in opf.iter(f"{_OPF}item")}
    spine = [items.get(r.get("idref")) for r in opf.iter(f"{_OPF}itemref")]
    spine = [posixpath.normpath(posixpath.join(base, h.split("#")[0])) for h in spine if h]
    if len(spine) > MAX_CHAPTERS:
        raise DocumentError(rel, f"{len(spine):,} chapters, over the {MAX_CHAPTERS:,} limit")
    out = TextBuilder()
    sections: list[Section] = []
    for name in dict.fromkeys(spine):
        if name not in names or z.getinfo(name).file_size > MAX_CHAPTER_MB * 1024 * 1024:
            continue
        try:
            chapter = load_html(f"{rel}/{name}", z.read(name), "")
            text, found = chapter.text, chapter.sections
        except DocumentError:
            continue  # one unreadable chapter: the rest of the book still counts
        if text.strip():
            start = out.block(text)
            stripped = len(text) - len(text.lstrip("\n"))
            sections += [Section(start + s.start - stripped, s.level, s.title) for s in found]
    text = out.text()
    title = clip(opf.findtext(f".//{_DC}title") or "") or pick_title(text, tuple(sections), rel)
    return Document(path=rel, text=text, sha256=sha256, title=title, sections=tuple(sections))
