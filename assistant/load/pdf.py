"""PDF files: the text of each page, pages joined by a blank line, with the start offset of every page."""

from __future__ import annotations

import io
from typing import Any

from ..errors import DocumentError
from ..records import Document, Section
from .text import clip, pick_title

PAGE_SEPARATOR = "\n\n"


def load_pdf(rel: str, data: bytes, sha256: str) -> Document:
    """Extract the text of every page with pypdf. A PDF without any text (scanned), an encrypted one and
    a damaged one raise DocumentError."""
    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not _decrypt(reader):
            raise DocumentError(rel, "encrypted PDF (a password is needed)")
        pages = list(reader.pages)
    except DocumentError:
        raise
    except Exception as e:
        raise DocumentError(rel, f"unreadable PDF ({_one_line(e)})") from e
    texts: list[str] = []
    failure = ""
    for page in pages:
        try:
            texts.append(page.extract_text() or "")
        except Exception as e:  # one bad page should not lose the others
            texts.append("")
            failure = failure or _one_line(e)
    starts: list[int] = []
    pos = 0
    for t in texts:
        starts.append(pos)
        pos += len(t) + len(PAGE_SEPARATOR)
    text = PAGE_SEPARATOR.join(texts)
    if not text.strip():
        reason = (f"unreadable PDF ({failure})" if failure
                  else "no text layer (a scanned PDF?): nothing to index without OCR")
        raise DocumentError(rel, reason)
    sections = _outline(reader, texts, starts)
    title = clip(_metadata_title(reader)) or pick_title(text, sections, rel)
    return Document(path=rel, text=text, sha256=sha256, title=title, sections=sections, pages=tuple(starts))


def _decrypt(reader: Any) -> bool:
    """Open a PDF that is encrypted with an empty user password (common: "no copying" protection)."""
    try:
        return bool(reader.decrypt(""))
    except Exception:  # e.g. pypdf's DependencyError when AES needs the cryptography package
        return False


def _metadata_title(reader: Any) -> str:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:
        return ""
    return title.strip() if isinstance(title, str) else ""


def _outline(reader: Any, texts: list[str], starts: list[int]) -> tuple[Section, ...]:
    """Sections from the PDF's bookmarks, placed where the bookmark's title appears on its page (or at the
    top of the page)."""
    found: list[Section] = []
    lowered: dict[int, str] = {}  # a page's text in lower case, made once however many bookmarks it has

    def walk(items: list[Any], level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            title = " ".join(str(getattr(item, "title", "") or "").split())
            page = reader.get_destination_page_number(item)
            if not title or page is None or not 0 <= page < len(texts) or not texts[page].strip():
                continue
            at = texts[page].find(title)
            if at < 0:
                if page not in lowered:
                    lowered[page] = texts[page].lower()
                at = lowered[page].find(title.lower())
            found.append(Section(starts[page] + max(at, 0), level, title))

    try:
        walk(reader.outline, 1)
    except Exception:  # bookmarks are a bonus; a damaged outline must not lose the text
        return ()
    return tuple(sorted(found, key=lambda s: s.start))


def _one_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0] or type(e).__name__
