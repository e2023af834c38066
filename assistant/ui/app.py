"""The web chat: a Gradio Blocks app over an `Assistant`. A chat whose answers stream in and cite checkable
sources, a Documents tab to add and remove files, and `ask` / `search` / `documents` endpoints for
gradio_client. Conversations live in per-session gr.State; nothing is shared between browsers."""

from __future__ import annotations

import os
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from ..errors import AssistantError, ConfigError, DocumentError, InputError
from ..jsonable import OFFSETS, answer_dict, hit_dict
from ..load.uploads import SUPPORTED_SUFFIXES, check_size
from ..records import Turn
from . import render
from .server import discard_upload

if TYPE_CHECKING:
    from ..app import Assistant

DEFAULT_EXAMPLES = (
    "How will TikTok's eCommerce initiative impact its users?",
    "What expertise do the Amazon and Meta veterans bring to TikTok?",
    "Will TikTok's focus on eCommerce change its core entertainment value?",
    "How will TikTok address privacy concerns related to eCommerce?",
    "What impact will TikTok's eCommerce entry have on the competition?",
)
MAX_K = 20
STREAM_EVERY_CHARS = 24  # re-render the streaming message at most every this many new characters
MODES = [("Extractive: quotes the documents", "extractive"),
         ("LLM: writes an answer, cites the documents", "llm")]
DOC_HEADERS = ["Document", "Title", "Chunks", "Last indexed"]


@dataclass
class ChatSession:
    """One browser session's conversation: what the backend needs (turns) and what the chatbot shows."""

    turns: list[Turn] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)


def build_ui(assistant: Assistant, examples: Sequence[str] = DEFAULT_EXAMPLES) -> gr.Blocks:
    """The Blocks app; launch it with `launch()` (which adds the stylesheet and limits) or `serve()`."""
    settings = assistant.settings
    h = _Handlers(assistant)
    with gr.Blocks(title="Document assistant", analytics_enabled=False) as demo:
        gr.Markdown("## Document assistant\nAnswers come only from your documents, with numbered sources "
                    "you can check: click a marker like [1] to see the quoted sentence in its passage.")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                session = gr.State(ChatSession())
                chatbot = gr.Chatbot(
                    label="Conversation", show_label=False, elem_id="chat", height=620, elem_classes=["chat-msg"],
                    # Messages are HTML built by render.py, where every document, user and model string is
                    # escaped. Markdown and LaTeX are off so text from documents is never interpreted; the
                    # sanitiser stays on as a second line of defence.
                    render_markdown=False, sanitize_html=True, latex_delimiters=[], allow_tags=False,
                    buttons=["copy"], feedback_options=None, autoscroll=True,
                    placeholder="Ask a question about the documents.")
                with gr.Row():
                    question = gr.Textbox(placeholder="Ask a question about the documents…", show_label=False,
                                          scale=8, elem_id="question", autofocus=True, max_lines=6,
                                          max_length=settings.max_question_chars)
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                    clear = gr.Button("New conversation", scale=1, elem_id="clear")
                example_set = gr.Dataset(components=["textbox"], samples=[[q] for q in examples],
                                         label="Examples (click to ask)", elem_id="examples", type="values")
                with gr.Row():
                    mode = gr.Radio(MODES, value="extractive", label="Answer mode", elem_id="mode",
                                    interactive=False, scale=3)
                    k = gr.Slider(1, min(settings.max_k, max(MAX_K, settings.k)), value=settings.k, step=1,
                                  label="Passages to retrieve (k)", elem_id="k", scale=2)
                llm_line = gr.Markdown("LLM: checking…", elem_id="llm-status")
                index_line = gr.Markdown(_md_text(h.index_status()), elem_id="index-status")
                with gr.Accordion("Retrieved passages and scores (last answer)", open=False,
                                  elem_id="hits-acc"):
                    hits = gr.HTML(render.render_hits(()), elem_id="hits")

            with gr.Tab("Documents", id="documents"):
                docs_table = gr.Dataframe(headers=DOC_HEADERS, datatype=["str", "str", "number", "str"],
                                          type="array", interactive=False, elem_id="docs-table", wrap=True,
                                          column_widths=["30%", "44%", "8%", "18%"],
                                          label="Indexed documents")
                files = gr.File(label=f"Add documents ({' '.join(SUPPORTED_SUFFIXES)}; "
                                      f"up to {settings.max_upload_mb:g} MB each)",
                                file_count="multiple", file_types=list(SUPPORTED_SUFFIXES), type="filepath",
                                elem_id="upload")
                add = gr.Button("Add to the index", variant="primary", elem_id="add-docs")
                with gr.Row():
                    to_remove = gr.Dropdown(label="Document to remove", choices=[], elem_id="remove-choice",
                                            scale=4)
                    remove = gr.Button("Remove from the index", variant="stop", elem_id="remove-doc", scale=1)
                with gr.Row():
                    docs_index_line = gr.Markdown(_md_text(h.index_status()), elem_id="docs-index-status")
                    stop = gr.Button("Stop indexing", elem_id="stop-indexing", scale=0, size="sm")
                doc_status = gr.HTML("", elem_id="doc-status", elem_classes=["status-box"])

        chat_inputs = [question, session, k, mode]
        chat_outputs = [chatbot, session, question, hits]
        private: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden",
                                   "concurrency_id": "chat", "concurrency_limit": 4}
        question.submit(h.respond, chat_inputs, chat_outputs, **private)
        send.click(h.respond, chat_inputs, chat_outputs, **private)
        example_set.click(lambda sample: sample[0], example_set, question, api_visibility="private",
                          queue=False).then(h.respond, chat_inputs, chat_outputs, **private)
        clear.click(lambda: ([], ChatSession(), "", render.render_hits(())), None, chat_outputs,
                    api_visibility="private", queue=False)

        doc_outputs = [docs_table, to_remove]
        index_write: dict[str, Any] = {"api_visibility": "private", "concurrency_id": "index-write",
                                       "concurrency_limit": 1}
        add.click(h.add_files, files, [doc_status, files, *doc_outputs], **index_write)
        remove.click(h.remove, to_remove, [doc_status, *doc_outputs], **index_write)
        demo.load(h.documents_view, None, doc_outputs, api_visibility="private")
        demo.load(h.llm_view, None, [llm_line, mode], api_visibility="private")
        # How far the dense vectors are, while they fill in behind a searchable index.
        timer = gr.Timer(3.0)
        timer.tick(h.index_view, None, [index_line, docs_index_line], api_visibility="private", queue=False,
                   show_progress="hidden")
        stop.click(h.stop_indexing, None, [docs_index_line], api_visibility="private", queue=False)

        gr.api(_typed(h.api_ask), api_name="ask", concurrency_id="chat", concurrency_limit=4)
        gr.api(_typed(h.api_search), api_name="search", concurrency_id="chat", concurrency_limit=4)
        gr.api(_typed(h.api_documents), api_name="documents")
    return demo


def launch(assistant: Assistant, host: str | None = None, port: int | None = None, *, block: bool = True,
           examples: Sequence[str] = DEFAULT_EXAMPLES, quiet: bool = False) -> gr.Blocks:
    """Build and start the web chat on host:port (default: settings.host, settings.port). With block=False
    it returns once the server is up (tests); the URL is `demo.local_url`. Uploads go to the server's private
    temp folder, which `demo.close()` deletes; with block=True the server is closed when interrupted."""
    from .server import ServerGuard, sigterm_exits

    settings = assistant.settings
    if bool(settings.auth_user) != bool(settings.auth_password):
        raise ConfigError("auth_user and auth_password: set both to require a login, or neither")
    # The private temp folder, the login check in front of every route and the login throttle: server.py.
    guard = ServerGuard(settings.auth_user, settings.auth_password)
    try:
        with guard.building():
            demo = guard.attach(build_ui(assistant, examples))
            # System fonts only: the default theme would fetch Google Fonts, and the chat must work offline.
            theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
            demo.queue(default_concurrency_limit=1)
            demo.launch(
                server_name=host or settings.host, server_port=port or settings.port, auth=guard.auth,
                app_kwargs=guard.app_kwargs(), max_file_size=int(settings.max_upload_mb * 1024 * 1024),
                theme=theme, css=render.CSS, prevent_thread_lock=True, quiet=True, share=False,
                inbrowser=False, ssr_mode=False, mcp_server=False, run_history=False, show_error=False,
                footer_links=["api"],
            )
    except BaseException:
        guard.close()
        raise
    from ..api.app import add_api_routes

    add_api_routes(demo, assistant, guard)  # REST, OpenAI-compatible chat, /docs and /healthz (assistant/api/)
    if not quiet:
        print(f"Web chat running on {demo.local_url}" + (" (login required)" if guard.auth else ""), flush=True)
        print(f"HTTP API: {demo.local_url}docs", flush=True)
    if block:
        try:
            with sigterm_exits():
                demo.block_thread()
        finally:
            demo.close()
    return demo


def serve(assistant: Assistant, host: str | None = None, port: int | None = None) -> None:
    """Run the web chat until interrupted (Ctrl+C or SIGTERM), then close it and delete its temp folder."""
    launch(assistant, host, port, block=True)


class _Handlers:
    """The event handlers, bound to one Assistant. They turn AssistantError into visible messages."""

    def __init__(self, assistant: Assistant) -> None:
        self.a = assistant

    # --- chat ---------------------------------------------------------------------------------------------

    def respond(self, question: str, session: ChatSession, k: float, mode: str
                ) -> Iterator[tuple[list[dict[str, str]], ChatSession, str, Any]]:
        question = (question or "").strip()
        if not question:
            yield session.messages, session, "", gr.skip()
            return
        turn = len(session.turns) + 1
        history = tuple(session.turns[-self.a.settings.max_history_turns:])
        asked = [*session.messages, _msg("user", render.render_question(question))]
        turns = list(session.turns)

        def show(html: str, hits: str | None = None) -> tuple[list[dict[str, str]], ChatSession, str, Any]:
            messages = [*asked, _msg("assistant", html)]
            return messages, ChatSession(list(turns), messages), "", gr.skip() if hits is None else hits

        yield show(render.render_partial(""))
        text, shown, answer = "", 0, None
        retriever = self.a.retriever  # the citations are shown in the texts of the version they came from
        try:
            for item in self.a.ask_stream(question, history=history, k=int(k), mode=mode or None,
                                          retriever=retriever):
                if isinstance(item, str):
                    text += item
                    if len(text) - shown >= STREAM_EVERY_CHARS:
                        shown = len(text)
                        yield show(render.render_partial(text))
                else:
                    answer = item
        except AssistantError as e:
            yield show(render.render_error(str(e)))
            return
        if answer is None:
            yield show(render.render_error("The assistant returned no answer."))
            return
        turns.append(Turn(question, answer.text, answer.citations))
        yield show(render.render_answer(answer, turn, retriever.document_text), render.render_hits(answer.hits))

    def index_status(self) -> str:
        dense, total = self.a.dense_status()
        docs = self.a.document_count()
        line = f"Index: {docs:,} documents, {total:,} passages"
        if dense < total:
            state = "filling in" if self.a.indexing else "paused"
            done, todo, rate = getattr(self.a, "fill_progress", (0, 0, 0.0))
            if self.a.indexing and rate > 0 and todo > done:
                left = int((todo - done) / rate)
                state += f", {rate:.1f} chunks/s, about {left // 60}:{left % 60:02d} left"
            line += (f"; dense vectors: {dense:,} of {total:,} ({state}; until then answers also use lexical "
                     "search alone)")
        return line

    def index_view(self) -> tuple[str, str]:
        line = _md_text(self.index_status())
        return line, line

    def stop_indexing(self) -> str:
        self.a.cancel_indexing()
        return _md_text(self.index_status() + " — stopping; what was embedded is kept")

    def llm_view(self) -> tuple[str, Any]:
        status = self.a.llm_status()
        configured = not status.startswith("not configured")
        default = self.a.settings.mode if configured else "extractive"
        line = f"LLM: {status}" + ("" if configured else " (set llm_base_url and llm_model to enable the LLM mode)")
        return _md_text(line), gr.update(value=default, interactive=configured)

    # --- documents ----------------------------------------------------------------------------------------

    def documents_view(self) -> tuple[list[list[Any]], Any]:
        docs = self.a.documents()
        rows = [[d.path, d.title, d.chunks, _short_time(d.indexed_at)] for d in docs]
        choices = [d.path for d in docs]
        return rows, gr.update(choices=choices, value=None)

    def add_files(self, paths: list[str] | None, progress: gr.Progress = gr.Progress()  # noqa: B008
                  ) -> tuple[Any, ...]:
        files, lines = [], []
        for path in paths or []:
            name = Path(path).name
            try:
                check_size(name, os.path.getsize(path), self.a.settings.max_upload_mb)
                files.append((name, Path(path).read_bytes()))
            except DocumentError as e:
                lines.append(("error", f"Rejected {e}"))
            except OSError as e:
                lines.append(("error", f"Rejected {name}: {e.strerror or type(e).__name__}; upload it again"))
            finally:
                discard_upload(path)  # Gradio's copy: the documents folder now holds the only one
        if not paths:
            lines.append(("error", "Choose one or more files first."))
        if files:
            try:
                up = self.a.add_documents(files, progress=_progress_callback(progress))
            except AssistantError as e:
                lines.append(("error", f"Indexing failed: {e}"))
            else:
                added = [sv.name for sv in up.saved if not sv.duplicate]
                if added and up.build is not None:
                    lines.append(("ok", f"Added {', '.join(added)}. {up.build.summary()}"))
                lines += [("info", sv.note) for sv in up.saved if sv.note]
                lines += [("error", f"Rejected {r}") for r in up.rejected]
                if up.build is not None:
                    lines += [("error", f"Skipped {sk.rel}: {sk.reason}") for sk in up.build.skipped
                              if sk.rel not in added and not any(sk.rel in r for r in up.rejected)]
        return (_status(lines), None, *self.documents_view())

    def remove(self, source: str | None) -> tuple[Any, ...]:
        if not source:
            return (_status([("error", "Choose a document to remove.")]), *self.documents_view())
        try:
            report = self.a.remove_document(source)
            line = ("ok", f"Removed {source}. {report.summary()}")
        except AssistantError as e:
            line = ("error", str(e))
        return (_status([line]), *self.documents_view())

    # --- HTTP API (gradio_client) ---------------------------------------------------------------------------

    def api_ask(self, question: str, k: int | None = None, mode: str | None = None,
                history: list[list[str]] | None = None) -> dict:
        """Answer `question` from the documents. `history`: earlier [question, answer] pairs of the
        conversation. Returns the Answer: text with [n] markers, citations, abstained, hits, notices."""
        try:
            turns = _turns(history)
            return answer_dict(self.a.ask(question, history=turns, k=k, mode=mode or None))
        except AssistantError as e:
            raise _gr_error(e) from None

    def api_search(self, query: str, k: int | None = None) -> dict:
        """The passages retrieved for `query`, best first, with their scores and character spans."""
        try:
            return {"query": query, "hits": [hit_dict(hit) for hit in self.a.search(query, k=k)], "offsets": OFFSETS}
        except AssistantError as e:
            raise _gr_error(e) from None

    def api_documents(self) -> list[dict]:
        """The indexed documents: source, title, chunks, indexed_at. ("source", not "path": gradio_client
        would take any dict with a "path" string for a file to download.)"""
        return [{"source": d.path, "title": d.title, "chunks": d.chunks, "indexed_at": d.indexed_at}
                for d in self.a.documents()]


def _turns(history: Any) -> tuple[Turn, ...]:
    """[[question, answer], ...] from the HTTP API as Turns; InputError for any other shape."""
    if history is None:
        return ()
    if not isinstance(history, list):
        raise InputError("history: must be a list of [question, answer] pairs")
    turns = []
    for i, pair in enumerate(history, start=1):
        if not isinstance(pair, list | tuple) or not 1 <= len(pair) <= 2 or not all(isinstance(x, str) for x in pair):
            raise InputError(f"history: turn {i} must be a [question, answer] pair of strings")
        turns.append(Turn(pair[0], pair[1] if len(pair) > 1 else ""))
    return tuple(turns)


def _typed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """gr.api reads the signature's annotations, which `from __future__ import annotations` leaves as
    strings; resolve them to the real types first."""
    fn.__func__.__annotations__ = typing.get_type_hints(fn)  # type: ignore[attr-defined]
    return fn


def _msg(role: str, html: str) -> dict[str, str]:
    return {"role": role, "content": html}


def _gr_error(e: Exception) -> Exception:
    return gr.Error(str(e), print_exception=False)


def _progress_callback(progress: Any) -> Callable[[str, int, int, str], None]:
    def report(stage: str, done: int, total: int, item: str = "") -> None:
        progress((done, total) if total else None, desc=stage)

    return report


def _status(lines: list[tuple[str, str]]) -> str:
    from html import escape

    icons = {"ok": "✓", "error": "⚠", "info": "ℹ"}
    return "".join(f'<p class="{kind}">{icons[kind]} {escape(text)}</p>' for kind, text in lines)


def _md_text(text: str) -> str:
    """Plain text for a gr.Markdown: escaped, and with Markdown punctuation neutralised."""
    from html import escape

    return "".join(f"\\{c}" if c in "\\`*_{}[]()#+-.!|<>" else c for c in escape(text, quote=False))


def _short_time(iso: str) -> str:
    """'2026-01-02T03:04:05+00:00' -> '2026-01-02 03:04:05 UTC'; other offsets are kept as they are."""
    if iso.endswith(("+00:00", "Z")):
        return iso.replace("T", " ")[:19] + " UTC"
    return iso.replace("T", " ")
