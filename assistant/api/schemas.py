"""The HTTP APIs' request bodies (validated) and response shapes (documented in the OpenAPI schema; the
routes return the same dicts as the CLI's --json, from assistant/jsonable.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from ..jsonable import OFFSETS

K_FIELD = "Passages to retrieve: a whole number from 1 to max_k (50 by default); default: the setting k (5)."


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class SearchRequest(_Request):
    query: StrictStr = Field(description="What to search for (at most max_question_chars characters, 4,000 by "
                                         "default).", examples=["Who joined TikTok from Meta?"])
    k: StrictInt | None = Field(None, description=K_FIELD, examples=[3])
    retrieval: Literal["hybrid", "dense", "bm25"] | None = Field(
        None, description="Which rankings to use; default: the setting retrieval (hybrid).")


class HistoryTurn(_Request):
    question: StrictStr
    answer: StrictStr = ""


class AskRequest(_Request):
    question: StrictStr = Field(description="The question (at most max_question_chars characters).",
                                examples=["Who is Alex Turner?"])
    history: list[HistoryTurn] = Field(
        default_factory=list, description="Earlier turns of the conversation, oldest first (at most "
                                          "max_history_turns, 20 by default), so a follow-up finds its subject.")
    k: StrictInt | None = Field(None, description=K_FIELD)
    mode: Literal["extractive", "llm"] | None = Field(
        None, description="extractive quotes the documents; llm has the configured LLM write the answer and checks "
                          "its citations. Default: the setting mode.")


# -- responses (documentation: the routes return the CLI's --json objects, which these describe) ------------

class Hit(BaseModel):
    rank: int
    score: float
    source: str = Field(description="Path of the document relative to the documents folder.")
    start: int = Field(description=OFFSETS)
    end: int
    text: str = Field(description="The passage: text[start:end] of the document's loaded text.")
    headings: list[str]
    page: int | None
    dense_score: float | None
    bm25_score: float | None


class Citation(BaseModel):
    n: int = Field(description="The [n] marker in the answer text.")
    source: str
    quote: str = Field(description="The quoted sentence (with the sentence or code it leans on): exactly "
                                   "text[start:end] of the source's loaded text.")
    start: int = Field(description=OFFSETS)
    end: int
    headings: list[str]
    page: int | None
    passage_start: int = Field(description="The retrieved passage the quote came from, to show it in context.")
    passage_end: int


class SearchResponse(BaseModel):
    query: str
    hits: list[Hit]
    offsets: str
    timings_ms: dict[str, float]
    dense_index: str | None = None


class AskResponse(BaseModel):
    question: str
    answer: str = Field(description="Sentences carrying [n] markers that refer to citations.")
    abstained: bool = Field(description="True when the documents do not hold the answer.")
    mode: str
    citations: list[Citation]
    hits: list[Hit]
    notices: list[str]
    unsupported: list[str]
    offsets: str
    timings_ms: dict[str, float]


class DocumentInfo(BaseModel):
    source: str
    title: str
    chunks: int
    indexed_at: str


class DocumentList(BaseModel):
    documents: list[DocumentInfo]


class Section(BaseModel):
    start: int = Field(description="Offset of the heading's first character in text.")
    level: int
    title: str


class DocumentText(BaseModel):
    source: str
    title: str
    text: str = Field(description="The loaded text that every start/end offset indexes: the file itself for text "
                                  "formats, the extracted text for HTML and PDF.")
    sections: list[Section]
    pages: list[int] = Field(description="PDF: the offset in text where each page starts; empty otherwise.")
    sha256: str = Field(description="Of the file's bytes when it was indexed.")
    offsets: str


class Health(BaseModel):
    status: Literal["ok", "loading"]
    generation: str
    documents: int
    chunks: int
    dense_vectors: int
    indexing: bool
    model: str
    backend: str
    segments: int
    dense_index: str


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


# -- OpenAI-compatible chat completions -----------------------------------------------------------------------

class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: StrictStr
    text: StrictStr | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, ...: accepted and not used
    role: StrictStr
    content: StrictStr | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: StrictBool = False


class ChatRequest(BaseModel):
    """OpenAI's chat-completions request. Sampling fields (temperature, max_tokens, ...) are accepted and not
    used: answers are quoted from the documents, or written by the configured LLM under its own settings."""

    model_config = ConfigDict(extra="allow")
    model: StrictStr = Field(description="One of GET /v1/models: assistant (the setting mode), "
                                         "assistant-extractive or assistant-llm.", examples=["assistant"])
    messages: list[ChatMessage] = Field(description="The conversation; the last message is the user's question, "
                                                    "earlier user/assistant pairs its history. System messages are "
                                                    "not used: the answer comes from the documents.")
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    k: StrictInt | None = Field(None, description="Not OpenAI's: " + K_FIELD)
