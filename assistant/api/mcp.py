"""The MCP server: tools `search`, `ask` and `get_document` with typed schemas, over stdio (an agent host
starts `assistant mcp`) or streamable HTTP (`assistant mcp --http`), built on the official `mcp` SDK. Every
passage and quote comes with its source and offsets into the source's loaded text, which `get_document`
returns, so an agent can check a quote before it relies on it."""

# No `from __future__ import annotations` here: the SDK reads the tools' annotations, which hold bounds
# from the settings (max_k, max_question_chars) that only exist at run time.

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError as e:  # the optional extra
    from ..errors import ConfigError

    raise ConfigError("the MCP server needs the mcp package: pip install 'assistant[mcp]'") from e

from .. import __version__
from ..errors import AssistantError
from ..jsonable import OFFSETS, answer_dict, search_dict
from ..records import Turn
from . import schemas
from .auth import ApiAuth, Credentials
from .limits import max_body_bytes

if TYPE_CHECKING:
    import uvicorn

    from ..app import Assistant

MAX_TEXT_CHARS = 50_000  # most text one get_document call returns; ask again from `end` for more
HTTP_PATH = "/mcp"
INSTRUCTIONS = (
    "Answers and passages from the user's documents, offline. `search` returns passages with their source "
    "and character offsets; `ask` returns a short answer whose every sentence is quoted from a document and "
    "cited ([n] markers, with source, quote and offsets), or says the documents do not hold the answer "
    f"(abstained). `get_document` returns a document's text so a quote can be checked in context: {OFFSETS}.")
T = TypeVar("T")


class DocumentWindow(BaseModel):
    source: str
    title: str
    length: int = Field(description="Characters in the document's loaded text.")
    start: int = Field(description="Where `text` starts in the loaded text.")
    end: int = Field(description="Where `text` ends; call again with start=end for more.")
    text: str = Field(description="loaded_text[start:end].")
    sections: list[schemas.Section]
    pages: list[int]
    offsets: str


def build_server(a: "Assistant") -> MCPServer:
    """An MCP server with the three tools over `a`."""
    s = a.settings
    Query = Annotated[str, Field(min_length=1, max_length=s.max_question_chars, description="What to search for.")]
    Question = Annotated[str, Field(min_length=1, max_length=s.max_question_chars,
                                    description="The question, in the user's words.")]
    K = Annotated[int, Field(ge=1, le=s.max_k, description=f"Passages to retrieve, 1 to {s.max_k}.")]
    Source = Annotated[str, Field(min_length=1, max_length=1024,
                                  description="The document's path, as `search` and `ask` give it.")]
    History = Annotated[list[schemas.HistoryTurn], Field(max_length=s.max_history_turns,
                                                         description="Earlier turns, oldest first.")]
    server = MCPServer("assistant", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")

    def search(query: Query, k: K = s.k) -> schemas.SearchResponse:
        """Passages of the documents for a query, best first, each with its source, offsets and headings."""
        retriever = a.retriever
        hits, timings = _tool(lambda: retriever.search_with_timings(query, k))
        return search_dict(query, hits, timings, retriever.dense_index)  # type: ignore[return-value]

    def ask(question: Question, k: K = s.k, mode: Literal["extractive", "llm"] | None = None,
            history: History | None = None) -> schemas.AskResponse:
        """A short answer quoted from the documents, every sentence cited: citations give the source, the
        quote and its offsets. `abstained` is true when the documents do not hold the answer."""
        turns = [Turn(t.question, t.answer) for t in history or ()]
        return answer_dict(_tool(lambda: a.ask(question, history=turns, k=k, mode=mode)))  # type: ignore[return-value]

    def get_document(source: Source, start: Annotated[int, Field(ge=0)] = 0,
                     end: Annotated[int | None, Field(ge=0)] = None) -> DocumentWindow:
        doc = a.retriever.reader.documents.get(source)
        if doc is None:
            raise ToolError(f"{source}: not an indexed document")
        stop = min(len(doc.text), start + MAX_TEXT_CHARS, len(doc.text) if end is None else end)
        begin = min(start, stop)
        return DocumentWindow(source=doc.path, title=doc.title, length=len(doc.text), start=begin, end=stop,
                              text=doc.text[begin:stop], pages=list(doc.pages), offsets=OFFSETS,
                              sections=[schemas.Section(start=x.start, level=x.level, title=x.title)
                                        for x in doc.sections])

    get_document.__doc__ = (f"A document's loaded text (at most {MAX_TEXT_CHARS:,} characters a call; ask again "
                            "from `end` for more), its title, sections and PDF page starts: for every citation "
                            "and passage of that source, quote == text[start:end].")
    for fn in (search, ask, get_document):
        server.add_tool(fn, structured_output=True)
    return server


def _tool(call: Callable[[], T]) -> T:
    try:
        return call()
    except AssistantError as e:
        raise ToolError(str(e)) from None


def run_stdio(a: "Assistant") -> None:
    """Serve over stdin/stdout until the host closes them (the SDK keeps stray prints off the protocol)."""
    build_server(a).run("stdio")


def http_server(a: "Assistant", host: str, port: int, credentials: Credentials | None = None) -> "uvicorn.Server":
    """A uvicorn server for streamable HTTP at http://host:port/mcp, behind `credentials`; `.run()` it (or
    set `.should_exit` to stop one running in a thread). On a loopback address the SDK refuses other Hosts."""
    import uvicorn

    app = build_server(a).streamable_http_app(streamable_http_path=HTTP_PATH, host=host,
                                              max_request_body_size=max_body_bytes(a.settings))
    guarded: Any = ApiAuth(app, credentials or Credentials())
    config = uvicorn.Config(guarded, host=host, port=port, log_level="warning", lifespan="on")
    return uvicorn.Server(config)


@contextlib.contextmanager
def stdout_to_stderr() -> Any:
    """While the index opens: anything printed goes to stderr, never into the stdio protocol."""
    import sys

    with contextlib.redirect_stdout(sys.stderr):
        yield
