"""Plain-JSON shapes of the records, shared by the CLI's --json output and the HTTP API."""

from __future__ import annotations

from typing import Any

from .records import Answer, Citation, Hit

# The contract of every start/end below, carried in the JSON itself so a client never has to guess.
OFFSETS = ("start/end index the loaded text of the source: the file itself for text formats (.txt, .md, "
           ".rst, .adoc), the extracted text for HTML, PDF, .docx, .pptx, .ipynb and .epub "
           "(Assistant.document_text(source) returns it)")


def hit_dict(h: Hit) -> dict[str, Any]:
    return {"rank": h.rank, "score": round(h.score, 6), "source": h.source, "start": h.start, "end": h.end,
            "text": h.text, "headings": list(h.headings), "page": h.page,
            "dense_score": None if h.dense_score is None else round(h.dense_score, 6),
            "bm25_score": None if h.bm25_score is None else round(h.bm25_score, 6)}


def citation_dict(c: Citation) -> dict[str, Any]:
    return {"n": c.n, "source": c.source, "quote": c.quote, "start": c.start, "end": c.end,
            "headings": list(c.headings), "page": c.page, "passage_start": c.passage_start,
            "passage_end": c.passage_end}


def search_dict(query: str, hits: list[Hit], timings: dict[str, float], dense_index: str = "") -> dict[str, Any]:
    """`dense_index` says which index answered the dense ranking ("exact", or the ANN index used)."""
    out = {"query": query, "hits": [hit_dict(h) for h in hits], "offsets": OFFSETS,
           "timings_ms": {k.removesuffix("_ms"): round(v, 2) for k, v in timings.items()}}
    if dense_index:
        out["dense_index"] = dense_index
    return out


def answer_dict(a: Answer) -> dict[str, Any]:
    return {"question": a.question, "answer": a.text, "abstained": a.abstained, "mode": a.mode,
            "citations": [citation_dict(c) for c in a.citations], "hits": [hit_dict(h) for h in a.hits],
            "notices": list(a.notices), "unsupported": list(a.unsupported), "offsets": OFFSETS,
            "timings_ms": {k.removesuffix("_ms"): round(v, 2) for k, v in a.timings_ms.items()}}
