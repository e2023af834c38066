"""The web chat: a Gradio Blocks app over an `Assistant`. Beside the conversation, the source pane shows a
cited document with the quote highlighted; conversations are saved per browser and listed in the sidebar;
the Documents tab manages the folder. `ask` / `search` / `documents` endpoints serve gradio_client. The
handlers are in chat.py (conversation, pane, feedback) and library.py (documents)."""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from ..conversations import ConversationStore
from ..errors import AssistantError, ConfigError, InputError
from ..jsonable import OFFSETS, answer_dict, hit_dict
from ..load.uploads import SUPPORTED_SUFFIXES
from ..records import Turn
from . import render
from .chat import PANE_EMPTY, ChatHandlers, ChatSession
from .library import SORTS, STATUS_FILTERS, LibraryHandlers

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
MODES = [("Extractive: quotes the documents", "extractive"),
         ("LLM: writes an answer, cites the documents", "llm")]
CLIENT_JS = (Path(__file__).with_name("client.js")).read_text(encoding="utf-8")
# After an answer: its question at the top of the view, so an answer (or "not found") is read from its start.
SCROLL_TO_ANSWER = "() => window.assistantUI && window.assistantUI.showLastAnswer()"
SCROLL_TO_QUOTE = "() => window.assistantUI && window.assistantUI.showQuote()"


def build_ui(assistant: Assistant, examples: Sequence[str] = DEFAULT_EXAMPLES) -> gr.Blocks:
    """The Blocks app; launch it with `launch()` (which adds the stylesheet, the page script and limits)."""
    settings = assistant.settings
    store = ConversationStore(settings.chat_db_path)
    h, chat, lib = _Handlers(assistant), ChatHandlers(assistant, store), LibraryHandlers(assistant)
    with gr.Blocks(title="Document assistant", analytics_enabled=False) as demo:
        secret = store.secret()
        browser_id = gr.BrowserState(None, storage_key="assistant-browser-id", secret=secret)
        current = gr.BrowserState(None, storage_key="assistant-conversation", secret=secret)
        session = gr.State(ChatSession())
        with gr.Sidebar(label="Conversations", open=True, elem_id="sidebar", width=290):
            new = gr.Button("New conversation", variant="primary", elem_id="new-conv", size="sm")
            conv_list = gr.Radio([], label="Saved conversations", elem_id="conv-list", type="value")
            with gr.Row():
                title_box = gr.Textbox(placeholder="New name…", show_label=False, elem_id="rename-text",
                                       scale=3, max_length=80)
                rename = gr.Button("Rename", elem_id="rename-conv", size="sm", scale=1, min_width=70)
            with gr.Row():
                export = gr.DownloadButton("Export as Markdown", elem_id="export-conv", size="sm",
                                           interactive=False, scale=3)
                delete_conv = gr.Button("Delete", elem_id="delete-conv", size="sm", variant="stop", scale=1,
                                        min_width=70)
            with gr.Accordion("Settings", open=False, elem_id="settings"):
                k = gr.Slider(1, min(settings.max_k, max(MAX_K, settings.k)), value=settings.k, step=1,
                              label="Passages to retrieve (k)", elem_id="k")
                llm_url = gr.Textbox(label="LLM endpoint (OpenAI-compatible)", elem_id="llm-url",
                                     placeholder="http://127.0.0.1:11434/v1", max_length=300)
                llm_model = gr.Textbox(label="LLM model", elem_id="llm-model", max_length=200)
                llm_key = gr.Textbox(label="API key", type="password", elem_id="llm-key", max_length=500,
                                     placeholder="not set")
                save_llm = gr.Button("Save LLM settings", size="sm", elem_id="save-llm")
        gr.HTML('<div class="app-head"><h2>Document assistant</h2><p>Answers come only from your documents, '
                'with numbered sources: click a marker like [1] to read the quoted sentence in its document.'
                '</p></div>')
        with gr.Tabs():
            with gr.Tab("Chat", id="chat-tab"), gr.Row(equal_height=False, elem_id="chat-row"):
                with gr.Column(scale=3, min_width=320, elem_id="chat-col"):
                    chatbot = gr.Chatbot(
                        label="Conversation", show_label=False, elem_id="chat", height=560,
                        elem_classes=["chat-msg"],
                        # Messages are HTML built by render.py, where every document, user and model
                        # string is escaped. Markdown and LaTeX are off so text from documents is never
                        # interpreted; the sanitiser stays on as a second line of defence. Gradio's copy
                        # button would copy that HTML: each answer has its own plain-text Copy instead.
                        render_markdown=False, sanitize_html=True, latex_delimiters=[], allow_tags=False,
                        buttons=[], feedback_options=None, autoscroll=False,
                        placeholder="Ask a question about the documents.")
                    with gr.Row(elem_id="ask-row"):
                        question = gr.Textbox(placeholder="Ask a question about the documents…",
                                              show_label=False, scale=8, elem_id="question", max_lines=6,
                                              max_length=settings.max_question_chars)
                        send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask", min_width=60)
                    with gr.Row(elem_id="chat-actions"):
                        stop = gr.Button("■ Stop", size="sm", elem_id="stop", min_width=60)
                        regen = gr.Button("↻ Regenerate", size="sm", elem_id="regenerate", min_width=60)
                        clear = gr.Button("New conversation", size="sm", elem_id="clear", min_width=60)
                    feedback_line = gr.HTML("", elem_id="feedback-line")
                    with gr.Row(visible=False, elem_id="comment-row") as comment_row:
                        comment = gr.Textbox(placeholder="What was wrong? (optional)", show_label=False,
                                             elem_id="comment", scale=5, max_length=1000)
                        send_comment = gr.Button("Send", size="sm", elem_id="send-comment", scale=1)
                    mode = gr.Radio(MODES, value="extractive", label="Answer mode", elem_id="mode",
                                    interactive=False)
                    example_set = gr.Dataset(components=["textbox"], samples=[[q] for q in examples],
                                             label="Examples (click to ask)", elem_id="examples",
                                             type="values")
                    llm_line = gr.HTML("LLM: checking…", elem_id="llm-status")
                    index_line = gr.HTML(_line(h.index_status()), elem_id="index-status")
                    with gr.Accordion("Retrieved passages and scores (last answer)", open=False,
                                      elem_id="hits-acc"):
                        hits = gr.HTML(render.render_hits(()), elem_id="hits")
                with gr.Column(scale=2, min_width=300, elem_id="source-col"):
                    with gr.Row(elem_id="pane-nav"):
                        prev = gr.Button("‹ Previous", size="sm", elem_id="pane-prev", min_width=60)
                        nxt = gr.Button("Next citation ›", size="sm", elem_id="pane-next", min_width=60)
                    pane = gr.HTML(PANE_EMPTY, elem_id="source-pane")

            with gr.Tab("Documents", id="documents"):
                with gr.Row():
                    doc_filter = gr.Textbox(placeholder="Filter by name, title or type…", show_label=False,
                                            elem_id="doc-filter", scale=3)
                    doc_state = gr.Dropdown(STATUS_FILTERS, value="All", show_label=False, elem_id="doc-status-filter",
                                            scale=1)
                    doc_sort = gr.Dropdown(list(SORTS), value="Name", label="Sort by", elem_id="doc-sort", scale=1)
                docs_table = gr.HTML("", elem_id="docs-table")
                files = gr.File(label=f"Add documents ({' '.join(SUPPORTED_SUFFIXES)}; "
                                      f"up to {settings.max_upload_mb:g} MB each)",
                                file_count="multiple", file_types=list(SUPPORTED_SUFFIXES), type="filepath",
                                elem_id="upload")
                add = gr.Button("Add to the index", variant="primary", elem_id="add-docs")
                with gr.Row():
                    chosen = gr.Dropdown(label="Document", choices=[], elem_id="remove-choice", scale=4)
                    remove = gr.Button("Remove from the index…", variant="stop", elem_id="remove-doc", scale=1)
                    include = gr.Button("Include again", elem_id="include-doc", scale=1)
                    reindex = gr.Button("Re-index", elem_id="reindex-doc", scale=1)
                with gr.Group(visible=False, elem_id="confirm-remove") as confirm:
                    confirm_text = gr.HTML("", elem_id="confirm-text")
                    delete_file = gr.Checkbox(False, label="Also delete the file", elem_id="delete-file")
                    with gr.Row():
                        yes = gr.Button("Remove", variant="stop", elem_id="confirm-yes", size="sm")
                        no = gr.Button("Cancel", elem_id="confirm-no", size="sm")
                with gr.Row():
                    docs_index_line = gr.HTML(_line(h.index_status()), elem_id="docs-index-status")
                    stop_indexing = gr.Button("Stop indexing", elem_id="stop-indexing", scale=0, size="sm")
                doc_status = gr.HTML("", elem_id="doc-status", elem_classes=["status-box"])
        # The page script turns clicks on [n], "open ›", 👍 and 👎 inside messages into actions here.
        action = gr.Textbox(visible="hidden", elem_id="ui-action")
        action_go = gr.Button("action", visible="hidden", elem_id="ui-action-go")

        private: dict[str, Any] = {"api_visibility": "private"}
        asking: dict[str, Any] = {**private, "show_progress": "hidden", "concurrency_id": "chat",
                                  "concurrency_limit": 4}
        chat_inputs = [question, session, k, mode]
        chat_outputs = [chatbot, session, question, hits]
        after = [current, conv_list, export]
        for event in (question.submit, send.click):
            event(chat.respond, chat_inputs, chat_outputs, **asking).then(
                chat.after_answer, session, after, **private).then(None, js=SCROLL_TO_ANSWER, **private)
        example_set.click(lambda sample: sample[0], example_set, question, queue=False, **private).then(
            chat.respond, chat_inputs, chat_outputs, **asking).then(
            chat.after_answer, session, after, **private).then(None, js=SCROLL_TO_ANSWER, **private)
        regen.click(chat.regenerate, [session, k, mode], chat_outputs, **asking).then(
            chat.after_answer, session, after, **private).then(None, js=SCROLL_TO_ANSWER, **private)
        stop.click(chat.stop, session, [chatbot, session], queue=False, **private)

        view_outputs = [current, chatbot, session, conv_list, export, pane, comment_row, hits]
        for event in (new.click, clear.click, chatbot.clear):
            event(chat.new_conversation, session, view_outputs, queue=False, **private)
        conv_list.input(chat.select, [conv_list, session], view_outputs, **private)
        rename.click(chat.rename, [title_box, session], [conv_list, title_box, export], **private)
        delete_conv.click(chat.delete, session, view_outputs, **private)
        demo.load(chat.start, [browser_id, current, session], [browser_id, *view_outputs[:-1]], **private)

        action_go.click(chat.action, [action, session], [pane, session, comment_row, feedback_line, chatbot],
                        **private).then(None, js=SCROLL_TO_QUOTE, **private)
        prev.click(lambda s: chat.pane_move(s, -1), session, pane, **private).then(None, js=SCROLL_TO_QUOTE,
                                                                                   **private)
        nxt.click(lambda s: chat.pane_move(s, 1), session, pane, **private).then(None, js=SCROLL_TO_QUOTE,
                                                                                 **private)
        send_comment.click(chat.comment, [comment, session], [comment, feedback_line, comment_row], **private)
        comment.submit(chat.comment, [comment, session], [comment, feedback_line, comment_row], **private)

        view_in = [doc_filter, doc_state, doc_sort]
        doc_outputs = [docs_table, chosen]
        index_write: dict[str, Any] = {**private, "concurrency_id": "index-write", "concurrency_limit": 1}
        add.click(lib.add_files, [files, *view_in], [doc_status, files, *doc_outputs], **index_write)
        remove.click(lib.ask_remove, chosen, [confirm, doc_status, confirm_text, delete_file], **private)
        no.click(lambda: gr.update(visible=False), None, confirm, queue=False, **private)
        yes.click(lib.remove, [chosen, delete_file, *view_in], [doc_status, confirm, *doc_outputs], **index_write)
        include.click(lib.include, [chosen, *view_in], [doc_status, *doc_outputs], **index_write)
        reindex.click(lib.reindex, [chosen, *view_in], [doc_status, *doc_outputs], **index_write)
        for event in (doc_filter.change, doc_state.change, doc_sort.change):
            event(lib.view, view_in, doc_outputs, show_progress="hidden", **private)
        demo.load(lib.view, view_in, doc_outputs, **private)
        demo.load(h.llm_view, None, [llm_line, mode, llm_url, llm_model, llm_key], **private)
        save_llm.click(h.save_llm, [llm_url, llm_model, llm_key], [llm_line, mode, llm_url, llm_model, llm_key],
                       **private)
        # How far the dense vectors are, while they fill in behind a searchable index.
        timer = gr.Timer(3.0)
        timer.tick(h.index_view, None, [index_line, docs_index_line], queue=False, show_progress="hidden",
                   **private)
        stop_indexing.click(h.stop_indexing, None, [docs_index_line], queue=False, **private)

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
                theme=theme, css=render.CSS, js=CLIENT_JS, prevent_thread_lock=True, quiet=True, share=False,
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
    """Index and LLM status, the LLM settings, and the HTTP API. They turn AssistantError into messages."""

    def __init__(self, assistant: Assistant) -> None:
        self.a = assistant

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
        line = _line(self.index_status())
        return line, line

    def stop_indexing(self) -> str:
        self.a.cancel_indexing()
        return _line(self.index_status() + " — stopping; what was embedded is kept")

    def llm_view(self, note: str = "") -> tuple[Any, ...]:
        """The status line, the mode choice, and the settings fields (the key is never sent back)."""
        s = self.a.settings
        status = self.a.llm_status()
        configured = not status.startswith("not configured")
        default = s.mode if configured else "extractive"
        line = f"LLM: {status}" + ("" if configured else " (set an endpoint and a model to enable the LLM mode)")
        key = gr.update(value="", placeholder="set (hidden); type a new one to replace it" if s.llm_api_key
                        else "not set")
        return (_line(line, note), gr.update(value=default, interactive=configured), s.llm_base_url,
                s.llm_model, key)

    def save_llm(self, url: str, model: str, key: str) -> tuple[Any, ...]:
        try:
            self.a.configure_llm(url or "", model or "", key if key else None)
        except AssistantError as e:
            return (_line(f"⚠ {e}"), gr.skip(), gr.skip(), gr.skip(), gr.update(value=""))
        return self.llm_view("saved for this server")

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


def _gr_error(e: Exception) -> Exception:
    return gr.Error(str(e), print_exception=False)



def _line(text: str, note: str = "") -> str:
    """A status line as escaped HTML (gr.Markdown would show the escapes a URL needs: `127\\.0\\.0\\.1`)."""
    extra = f' <span class="note">({escape(note)})</span>' if note else ""
    return f'<p class="status-line">{escape(text)}{extra}</p>'
