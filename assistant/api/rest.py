"""The REST routes: search, ask, the documents and their loaded text, and the health of the index. Search and
ask return exactly the CLI's `search --json` and `ask --json` objects (assistant/jsonable.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from starlette.responses import JSONResponse

from ..jsonable import OFFSETS, answer_dict, search_dict
from ..records import Turn
from . import schemas
from .errors import RETRY_AFTER_S, ApiError, loading

if TYPE_CHECKING:
    from ..app import Assistant

MAX_SOURCE_CHARS = 1024  # longer than any path the index holds

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": schemas.ErrorBody, "description": "Bad input: the message names the field."},
    401: {"model": schemas.ErrorBody, "description": "No login, or a wrong one."},
    413: {"model": schemas.ErrorBody, "description": "Request body larger than the input bounds allow."},
    503: {"model": schemas.ErrorBody, "description": "The embedding model is loading; see Retry-After."},
}


def model_loading(a: Assistant) -> bool:
    """True while the embedding model loads (a server's warm-up): searches would wait for it."""
    return bool(getattr(a.retriever.embedder, "loading", False))


def check_ready(a: Assistant) -> None:
    if model_loading(a):
        raise loading()


def router(a: Assistant) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/search", response_model=None, tags=["search"], summary="Retrieve passages",
            responses={200: {"model": schemas.SearchResponse}, **ERRORS},
            description="The passages for `query`, best first: exactly `assistant search --json`. Each hit's "
                        f"start/end: {OFFSETS}; `GET /v1/documents/{{source}}` returns that text.")
    def search(body: schemas.SearchRequest) -> JSONResponse:
        if (body.retrieval or a.settings.retrieval) != "bm25":
            check_ready(a)
        retriever = a.retriever
        hits, timings = retriever.search_with_timings(body.query, body.k, retrieval=body.retrieval)
        return JSONResponse(search_dict(body.query, hits, timings, retriever.dense_index))

    @r.post("/v1/ask", response_model=None, tags=["answers"], summary="Answer with citations",
            responses={200: {"model": schemas.AskResponse}, **ERRORS},
            description="A cited answer: exactly `assistant ask --json`. Every citation's quote is "
                        "text[start:end] of its source's loaded text (the file itself for text formats, the "
                        "extracted text for HTML and PDF; `GET /v1/documents/{source}` returns it). An answer the "
                        "documents do not hold says so (`abstained`).")
    def ask(body: schemas.AskRequest) -> JSONResponse:
        check_ready(a)
        history = [Turn(t.question, t.answer) for t in body.history]
        return JSONResponse(answer_dict(a.ask(body.question, history=history, k=body.k, mode=body.mode)))

    @r.get("/v1/documents", response_model=schemas.DocumentList, tags=["documents"],
           summary="The indexed documents", responses={401: ERRORS[401]})
    def documents() -> dict[str, Any]:
        return {"documents": [{"source": d.path, "title": d.title, "chunks": d.chunks, "indexed_at": d.indexed_at}
                              for d in a.documents()]}

    @r.get("/v1/documents/{source:path}", response_model=schemas.DocumentText, tags=["documents"],
           summary="A document's loaded text, to show a citation in context",
           responses={404: {"model": schemas.ErrorBody, "description": "No indexed document has this source."},
                      400: ERRORS[400], 401: ERRORS[401]},
           description=f"The text every offset indexes ({OFFSETS}), with the title, the sections (headings by "
                       "offset) and PDF page starts. `source` is the path relative to the documents folder, as "
                       "hits and citations give it (URL-encoded; slashes may stay).")
    def document(source: str) -> dict[str, Any]:
        if len(source) > MAX_SOURCE_CHARS:
            raise ApiError(400, "invalid_input", f"source: {len(source):,} characters; the limit is "
                                                 f"{MAX_SOURCE_CHARS:,}")
        doc = a.retriever.reader.documents.get(source)
        if doc is None:
            raise ApiError(404, "unknown_source", f"{source}: not an indexed document (GET /v1/documents lists "
                                                  "them)")
        return {"source": doc.path, "title": doc.title, "text": doc.text,
                "sections": [{"start": s.start, "level": s.level, "title": s.title} for s in doc.sections],
                "pages": list(doc.pages), "sha256": doc.sha256, "offsets": OFFSETS}

    @r.get("/healthz", response_model=None, tags=["health"], summary="The live index and the model",
           responses={200: {"model": schemas.Health},
                      503: {"model": schemas.Health, "description": "The embedding model is still loading."}},
           description="Index generation, document and chunk counts, dense vectors filled in so far, the model. "
                       "503 with status \"loading\" while the model loads.")
    def healthz() -> JSONResponse:
        live = a.retriever
        m = live.reader.manifest
        dense, total = live.dense_status()
        busy = model_loading(a)
        body = {"status": "loading" if busy else "ok", "generation": live.reader.path.name,
                "documents": m.documents, "chunks": total, "dense_vectors": dense, "indexing": a.indexing,
                "model": m.model, "backend": m.backend or "torch", "segments": len(m.segments),
                "dense_index": live.dense_index}
        return JSONResponse(body, status_code=503 if busy else 200,
                            headers={"Retry-After": str(RETRY_AFTER_S)} if busy else None)

    return r
