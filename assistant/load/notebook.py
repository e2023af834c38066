"""Jupyter notebooks (.ipynb): markdown cells as Markdown (their headings are the notebook's sections), code
cells as fenced code blocks; outputs are left out (they are results, often large, rarely prose)."""

from __future__ import annotations

import json

from ..errors import DocumentError
from ..records import Document, Section
from .compose import TextBuilder
from .headings import markdown_sections
from .text import pick_title

MAX_CELLS = 20_000


def load_ipynb(rel: str, data: bytes, sha256: str) -> Document:
    from .text import decode_text

    try:
        nb = json.loads(decode_text(data))
    except ValueError as e:
        raise DocumentError(rel, f"not a notebook: invalid JSON ({e})") from None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise DocumentError(rel, "not a notebook: no list of cells (nbformat 4 is supported)")
    if len(cells) > MAX_CELLS:
        raise DocumentError(rel, f"{len(cells):,} cells, over the {MAX_CELLS:,} limit")
    language = str(((nb.get("metadata") or {}).get("kernelspec") or {}).get("language") or
                   ((nb.get("metadata") or {}).get("language_info") or {}).get("name") or "")
    out = TextBuilder()
    sections: list[Section] = []
    for cell in cells:
        if not isinstance(cell, dict):
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        if not source.strip():
            continue
        kind = cell.get("cell_type")
        if kind == "markdown":
            start = out.block(source)
            block = source.strip("\n")
            sections += [Section(start + s.start, s.level, s.title) for s in markdown_sections(block)]
        elif kind == "code":
            out.block(f"```{language}\n{source.strip(chr(10))}\n```")
    text = out.text()
    return Document(path=rel, text=text, sha256=sha256, title=pick_title(text, tuple(sections), rel),
                    sections=tuple(sections))
