"""The chat's event handlers: answers that stream in and can be stopped or regenerated, conversations saved
per browser (or per logged-in user) and reopened after a reload, the source pane, feedback, export. The
per-tab state is a ChatSession; what lasts is in the ConversationStore, always looked up with the owner key
of the browser that asks, so an id from one browser opens nothing in another."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from ..conversations import ConversationStore, new_browser_id, owner_key, valid_id
from ..errors import AssistantError
from ..records import Answer, Turn
from . import render
from .pane import render_pane

if TYPE_CHECKING:
    from ..app import Assistant

STREAM_EVERY_CHARS = 24  # re-render the streaming message at most every this many new characters
_ACTION = re.compile(r"^(cite|fb):(\d{1,4}):(\d{1,4}|up|down)(?::\d+)?$")
PANE_EMPTY = ('<div class="pane empty"><p>Click a marker like <b>[1]</b> or a source’s <b>open ›</b> to read the '
              'quoted sentence in its document here.</p></div>')

Update = dict[str, Any]


@dataclass
class ChatSession:
    """One browser tab's view of its current conversation."""

    owner: str = ""
    cid: str = ""  # the stored conversation; "" until its first answer
    turns: list[Turn] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    feedback: dict[int, int] = field(default_factory=dict)  # turn -> 1 / -1
    messages: list[dict[str, str]] = field(default_factory=list)
    pending: str | None = None  # the partial answer while one streams
    stop: bool = False  # set by Stop; the streaming loop ends at its next piece
    pane: tuple[int, int] | None = None  # (turn, citation number) shown in the source pane
    comment_turn: int = 0  # the turn a comment would be about
    epoch: int = 0  # +1 whenever the tab switches conversation: an answer of the old one is dropped


class ChatHandlers:
    def __init__(self, assistant: Assistant, store: ConversationStore) -> None:
        self.a = assistant
        self.store = store

    # --- the browser's identity and its conversations ----------------------------------------------------

    def start(self, browser_id: str | None, current: str | None, session: ChatSession | None = None,
              request: gr.Request | None = None) -> tuple[Any, ...]:
        """On page load: make the browser an id if it has none, and reopen its current conversation."""
        # The tab's session object is shared with a question asked before the page had loaded (Gradio hands
        # both events the same object): it is changed in place, never replaced, so neither loses the other.
        session = session if session is not None else ChatSession()
        if session.owner.startswith("b:"):
            return (session.owner[2:], session.cid, *self._view(session))
        if not valid_id(browser_id):
            browser_id = new_browser_id()
        session.owner = owner_key(browser_id, _user(request))
        if current and not session.answers and self.store.owns(session.owner, current):
            self._load(session, current)
        return (browser_id, session.cid, *self._view(session))

    def _load(self, session: ChatSession, cid: str) -> None:
        stored = self.store.turns(session.owner, cid)
        session.cid = cid
        session.turns = [Turn(t.question, t.answer.text, t.answer.citations) for t in stored]
        session.answers = [t.answer for t in stored]
        session.feedback = {t.n: t.feedback for t in stored if t.feedback}
        session.pending, session.pane, session.comment_turn = None, None, 0
        session.messages = self._render_all(session)

    def _render_all(self, session: ChatSession) -> list[dict[str, str]]:
        doc_text = self.a.retriever.document_text
        out = []
        for n, answer in enumerate(session.answers, start=1):
            out += [_msg("user", render.render_question(answer.question)),
                    _msg("assistant", render.render_answer(answer, n, doc_text, session.feedback.get(n)))]
        return out

    def _view(self, session: ChatSession) -> tuple[Any, ...]:
        """chatbot, session, conversation list, export file, pane, comment row."""
        return (session.messages, session, self._choices(session), self._export(session), PANE_EMPTY,
                gr.update(visible=False))

    def _choices(self, session: ChatSession) -> Update:
        items = [(f"{c.title} ({c.turns})", c.id) for c in self.store.list(session.owner)] if session.owner else []
        return gr.update(choices=items, value=session.cid or None)

    def new_conversation(self, session: ChatSession) -> tuple[Any, ...]:
        _reset(session)
        return ("", *self._view(session), render.render_hits(()))

    def select(self, cid: str | None, session: ChatSession) -> tuple[Any, ...]:
        if cid and cid != session.cid and self.store.owns(session.owner, cid):
            _reset(session)
            self._load(session, cid)
        return (session.cid, *self._view(session), render.render_hits(()))

    def rename(self, title: str, session: ChatSession) -> tuple[Any, ...]:
        if session.cid and (title or "").strip():
            self.store.rename(session.owner, session.cid, title)
        return self._choices(session), "", self._export(session)

    def delete(self, session: ChatSession) -> tuple[Any, ...]:
        if session.cid:
            self.store.delete(session.owner, session.cid)
        return self.new_conversation(session)

    def after_answer(self, session: ChatSession) -> tuple[Any, ...]:
        """Once an answer is in: the browser's current conversation, the list, the export file."""
        return session.cid, self._choices(session), self._export(session)

    def _export(self, session: ChatSession) -> Update:
        if not session.answers:
            return gr.update(value=None, interactive=False)
        title = next((c.title for c in self.store.list(session.owner) if c.id == session.cid), "Conversation") \
            if session.cid else "Conversation"
        md = render.conversation_markdown(title, [(a.question, a) for a in session.answers])
        import gradio.utils

        folder = Path(gradio.utils.get_upload_folder()) / "exports" / session.owner.replace(":", "_")
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.md"):
            old.unlink(missing_ok=True)
        path = folder / f"conversation-{time.strftime('%Y%m%d-%H%M%S')}.md"
        path.write_text(md, encoding="utf-8")
        return gr.update(value=str(path), interactive=True)

    # --- answers ------------------------------------------------------------------------------------------

    def respond(self, question: str, session: ChatSession, k: float, mode: str, request: gr.Request | None = None
                ) -> Iterator[tuple[list[dict[str, str]], ChatSession, str, Any]]:
        question = (question or "").strip()
        if not session.owner:  # asked before the page finished loading: start() adopts this id
            session.owner = owner_key(new_browser_id(), _user(request))
        if not question:
            yield session.messages, session, "", gr.skip()
            return
        if session.pending is not None:  # one answer at a time per tab
            yield session.messages, session, question, gr.skip()
            return
        turn = len(session.answers) + 1
        history = tuple(session.turns[-self.a.settings.max_history_turns:])
        asked = [*session.messages, _msg("user", render.render_question(question))]
        session.stop, session.pending = False, ""
        epoch = session.epoch

        def show(html: str, hits: str | None = None) -> tuple[list[dict[str, str]], ChatSession, str, Any]:
            if session.epoch != epoch:  # another conversation is open now: leave it alone
                return gr.skip(), session, gr.skip(), gr.skip()
            session.messages = [*asked, _msg("assistant", html)]
            return session.messages, session, "", gr.skip() if hits is None else hits

        yield show(render.render_partial(""))
        text, shown, answer = "", 0, None
        retriever = self.a.retriever  # the citations are shown in the texts of the version they came from
        try:
            for item in self.a.ask_stream(question, history=history, k=int(k), mode=mode or None,
                                          retriever=retriever):
                if session.stop or session.epoch != epoch:
                    break
                if isinstance(item, str):
                    text += item
                    session.pending = text
                    if len(text) - shown >= STREAM_EVERY_CHARS:
                        shown = len(text)
                        yield show(render.render_partial(text))
                else:
                    answer = item
        except AssistantError as e:
            session.pending = None
            yield show(render.render_error(str(e)))
            return
        if session.epoch != epoch:
            return
        if session.stop:
            session.pending = None
            yield show(render.render_stopped(text))
            return
        session.pending = None
        if answer is None:
            yield show(render.render_error("The assistant returned no answer."))
            return
        answer = replace(answer, question=question)  # what the user asked, as it is shown and saved
        try:
            if not session.cid:
                session.cid = self.store.create(session.owner)
            self.store.add_turn(session.owner, session.cid, answer)
        except AssistantError as e:
            yield show(render.render_error(f"Not saved: {e}"))
            return
        session.turns.append(Turn(question, answer.text, answer.citations))
        session.answers.append(answer)
        yield show(render.render_answer(answer, turn, retriever.document_text), render.render_hits(answer.hits))

    def stop(self, session: ChatSession) -> tuple[Any, ...]:
        """Stop the answer that is streaming: what came so far stays, marked as stopped, and is not saved."""
        if session.pending is not None:
            session.stop = True
            session.messages = [*session.messages[:-1], _msg("assistant", render.render_stopped(session.pending))]
            session.pending = None
        return session.messages, session

    def regenerate(self, session: ChatSession, k: float, mode: str, request: gr.Request | None = None
                   ) -> Iterator[tuple[Any, ...]]:
        """Answer the last question again, in place of its answer."""
        if not session.answers or session.pending is not None:
            yield session.messages, session, "", gr.skip()
            return
        question = session.answers[-1].question
        self.store.drop_last_turn(session.owner, session.cid)
        session.answers.pop()
        session.turns.pop()
        session.feedback.pop(len(session.answers) + 1, None)
        session.messages = session.messages[:-2]
        yield from self.respond(question, session, k, mode, request)

    # --- clicks inside messages: citations and feedback ---------------------------------------------------

    def action(self, raw: str, session: ChatSession) -> tuple[Any, ...]:
        """pane, session, comment row, feedback line, chatbot."""
        m = _ACTION.match((raw or "").strip())
        skip = (gr.skip(), session, gr.skip(), gr.skip(), gr.skip())
        if not m:
            return skip
        kind, turn = m.group(1), int(m.group(2))
        if not 1 <= turn <= len(session.answers):
            return skip
        if kind == "cite":
            session.pane = (turn, int(m.group(3)))
            return self._pane(session), session, gr.skip(), gr.skip(), gr.skip()
        rating = 1 if m.group(3) == "up" else -1
        try:
            self.store.set_feedback(session.owner, session.cid, turn, rating)
        except AssistantError as e:
            return gr.skip(), session, gr.skip(), render.render_error(str(e)), gr.skip()
        session.feedback[turn] = rating
        session.comment_turn = turn
        session.messages = self._render_all(session)
        what = "helpful" if rating == 1 else "not helpful"
        ask = "" if rating == 1 else " What was wrong? A comment helps (optional)."
        line = f'<p class="ok">Answer {turn} marked {what}: saved.{ask}</p>'
        return gr.skip(), session, gr.update(visible=rating == -1), line, session.messages

    def comment(self, text: str, session: ChatSession) -> tuple[Any, ...]:
        turn = session.comment_turn
        if not turn or not (text or "").strip():
            return gr.skip(), gr.skip(), gr.skip()
        try:
            self.store.set_feedback(session.owner, session.cid, turn, comment=text.strip())
        except AssistantError as e:
            return gr.skip(), render.render_error(str(e)), gr.skip()
        return "", f'<p class="ok">Comment saved for answer {turn}.</p>', gr.update(visible=False)

    def pane_move(self, session: ChatSession, step: int) -> str:
        if session.pane is None:
            return PANE_EMPTY
        turn, n = session.pane
        numbers = sorted(c.n for c in session.answers[turn - 1].citations)
        if n in numbers:
            session.pane = (turn, numbers[(numbers.index(n) + step) % len(numbers)])
        return self._pane(session)

    def _pane(self, session: ChatSession) -> str:
        assert session.pane is not None
        turn, n = session.pane
        answer = session.answers[turn - 1]
        cites = sorted(answer.citations, key=lambda c: c.n)
        active = next((c for c in cites if c.n == n), None)
        if active is None:
            return PANE_EMPTY
        try:
            doc = self.a.retriever.reader.documents[active.source]
        except KeyError:
            return (f'<div class="pane"><p class="notice">ℹ {render._e(active.source)} is no longer in the index. '
                    f'Quoted: <mark>{render._e(active.quote)}</mark></p></div>')
        return render_pane(doc, cites, active, (cites.index(active) + 1, len(cites)))


def _reset(session: ChatSession) -> None:
    """Empty the tab's conversation in place (an answer still streaming into it stops)."""
    owner, epoch = session.owner, session.epoch
    session.__init__(owner=owner, epoch=epoch + 1)  # type: ignore[misc]


def _user(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) if request is not None else None


def _msg(role: str, html: str) -> dict[str, str]:
    return {"role": role, "content": html}
