"""Word (.docx) and PowerPoint (.pptx) files: the text in reading order, headings from the paragraph styles
(Title, Heading 1-9) or the slide titles, tables as rows of cells separated by " | "."""

from __future__ import annotations

import io
import re
from typing import Any

from ..errors import DocumentError
from ..records import Document
from .compose import TextBuilder, open_zip
from .text import clip, pick_title

MAX_BLOCKS = 200_000  # paragraphs and table rows of one document
MAX_SLIDES = 5_000
MAX_TABLE_CELLS = 100_000
CELL_SEPARATOR = " | "
_HEADING_STYLE = re.compile(r"^(?:heading|überschrift|titre|título|titolo)\s*(\d)$", re.IGNORECASE)


def load_docx(rel: str, data: bytes, sha256: str) -> Document:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    open_zip(rel, data, "Word")
    try:
        d = docx.Document(io.BytesIO(data))
    except Exception as e:
        raise DocumentError(rel, f"not a readable Word document ({_one_line(e)})") from None
    out = TextBuilder()
    cells = 0
    for blocks, child in enumerate(d.element.body.iterchildren(), start=1):
        if blocks > MAX_BLOCKS:
            raise DocumentError(rel, f"more than {MAX_BLOCKS:,} paragraphs and table rows")
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            p = Paragraph(child, d)
            level = _heading_level(p)
            if level:
                out.heading(p.text, level)
            else:
                out.block(p.text)
        elif tag == "tbl":
            rows = []
            for row in Table(child, d).rows:
                texts = _dedupe([" ".join(c.text.split()) for c in row.cells])
                cells += len(texts)
                if cells > MAX_TABLE_CELLS:
                    raise DocumentError(rel, f"more than {MAX_TABLE_CELLS:,} table cells")
                if any(texts):
                    rows.append(CELL_SEPARATOR.join(texts))
            out.block("\n".join(rows))
    text = out.text()
    sections = tuple(out.sections)
    title = clip(d.core_properties.title or "") or pick_title(text, sections, rel)
    return Document(path=rel, text=text, sha256=sha256, title=title, sections=sections)


def load_pptx(rel: str, data: bytes, sha256: str) -> Document:
    import pptx

    open_zip(rel, data, "PowerPoint")
    try:
        deck = pptx.Presentation(io.BytesIO(data))
    except Exception as e:
        raise DocumentError(rel, f"not a readable PowerPoint file ({_one_line(e)})") from None
    slides = list(deck.slides)
    if len(slides) > MAX_SLIDES:
        raise DocumentError(rel, f"{len(slides):,} slides, over the {MAX_SLIDES:,} limit")
    out = TextBuilder()
    cells = 0
    for number, slide in enumerate(slides, start=1):
        title_shape = slide.shapes.title
        title = " ".join((title_shape.text_frame.text if title_shape is not None and title_shape.has_text_frame
                          else "").split())
        out.page()
        out.heading(f"Slide {number}: {title}" if title else f"Slide {number}", 1)
        for shape in _shapes(slide.shapes):
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            if getattr(shape, "has_table", False) and shape.has_table:
                rows = []
                for row in shape.table.rows:
                    texts = _dedupe([" ".join(c.text.split()) for c in row.cells])
                    cells += len(texts)
                    if cells > MAX_TABLE_CELLS:
                        raise DocumentError(rel, f"more than {MAX_TABLE_CELLS:,} table cells")
                    rows.append(CELL_SEPARATOR.join(texts))
                out.block("\n".join(rows))
            elif shape.has_text_frame:
                out.block("\n".join(p.text for p in shape.text_frame.paragraphs if p.text.strip()))
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame.text if slide.notes_slide.notes_text_frame else ""
            if notes.strip():
                out.block("Notes: " + notes.strip())
    text = out.text()
    sections = tuple(out.sections)
    title = clip(deck.core_properties.title or "") or next(
        (s.title.split(": ", 1)[-1] for s in sections if ": " in s.title), "") or pick_title(text, sections, rel)
    return Document(path=rel, text=text, sha256=sha256, title=title, sections=sections, pages=tuple(out.pages))


def _shapes(shapes: Any) -> list[Any]:
    """Every shape, group members included, top to bottom then left to right (reading order)."""
    flat: list[Any] = []
    for s in shapes:
        if s.shape_type == 6 and hasattr(s, "shapes"):  # MSO_SHAPE_TYPE.GROUP
            flat += _shapes(s.shapes)
        else:
            flat.append(s)
    return sorted(flat, key=lambda s: ((s.top or 0) // 50_000, s.left or 0))


def _heading_level(p: Any) -> int:
    name = (p.style.name if p.style is not None else "") or ""
    if name.lower() == "title":
        return 1
    m = _HEADING_STYLE.match(name.strip())
    if m:
        return int(m.group(1)) or 1
    outline = p._p.pPr.outlineLvl if p._p.pPr is not None and p._p.pPr.outlineLvl is not None else None
    return int(outline.val) + 1 if outline is not None and int(outline.val) < 9 else 0


def _dedupe(cells: list[str]) -> list[str]:
    """A merged cell is reported once per grid column it spans: keep it once."""
    out: list[str] = []
    for c in cells:
        if not out or c != out[-1] or not c:
            out.append(c)
    return out


def _one_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0] or type(e).__name__
