"""Fast tests of the web chat's HTML rendering and upload checks: no Gradio server, no model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant.errors import DocumentError
from assistant.load.uploads import check_size, sanitize_filename, target_path
from assistant.records import Answer, Citation, Hit
from assistant.ui import render

DOC = "Intro line.\n\nTikTok hired Jane Williams from Amazon. She knows supply chains.\n\nThe end."
PARA = "TikTok hired Jane Williams from Amazon. She knows supply chains."
P0, P1 = DOC.index(PARA), DOC.index(PARA) + len(PARA)
PAYLOAD = "<script>alert(1)</script> and <img src=x onerror=alert(2)> & \"quotes\""


def _quote(doc: str, sentence: str) -> tuple[int, int]:
    start = doc.index(sentence)
    return start, start + len(sentence)


def _answer(text: str, citations: tuple[Citation, ...] = (), **kw: object) -> Answer:
    hits = kw.pop("hits", (Hit(1, 0.8, "a.txt", P0, P1, PARA, ("Intro",)),))
    return Answer("q?", text, citations, kw.pop("abstained", False), hits, **kw)  # type: ignore[arg-type]


def _citation(n: int = 1, doc: str = DOC, sentence: str = "TikTok hired Jane Williams from Amazon.",
              source: str = "a.txt") -> Citation:
    s, e = _quote(doc, sentence)
    return Citation(n, source, s, e, sentence, ("Intro",), None, passage_start=P0, passage_end=P1)


# --- render ---------------------------------------------------------------------------------------------

def test_answer_markers_link_to_source_anchor_and_quote_is_marked_in_passage():
    html = render.render_answer(_answer("Jane Williams joined [1].", (_citation(),)), 3, lambda s: DOC)
    assert '<a class="cite" href="#cite-3-1"' in html
    assert 'id="cite-3-1"' in html
    assert "<mark>TikTok hired Jane Williams from Amazon.</mark>" in html
    assert "</mark> She knows supply chains.…</div>" in html  # the rest of the passage, unmarked
    assert "Intro line." not in html  # outside passage_start..passage_end
    assert '<span class="doc">a.txt</span>' in html and '<span class="where">Intro</span>' in html


def test_markers_without_a_citation_stay_plain_text():
    html = render.render_answer(_answer("See [1] and [7] and [1, 2].", (_citation(),)), 1, lambda s: DOC)
    assert html.count('class="cite"') == 1
    assert "[7]" in html and "[1, 2]" in html


def test_grouped_markers_become_separate_links():
    cits = (_citation(1), _citation(2, sentence="She knows supply chains."))
    html = render.render_answer(_answer("Both [1, 2].", cits), 2, lambda s: DOC)
    assert 'href="#cite-2-1"' in html and 'href="#cite-2-2"' in html


def test_everything_from_documents_and_models_is_escaped():
    doc = f"Head.\n\n{PAYLOAD} is the payload.\n\n"
    sentence = f"{PAYLOAD} is the payload."
    s, e = _quote(doc, sentence)
    cit = Citation(1, "<b>evil</b>.txt", s, e, sentence, ("<i>h</i>",), None, s, e)
    hit = Hit(1, 0.5, "<b>evil</b>.txt", s, e, sentence, ("<i>h</i>",))
    answer = Answer(f"{PAYLOAD} [1]", f"{PAYLOAD} [1]", (cit,), False, (hit,), mode="<u>m</u>",
                    notices=(PAYLOAD,), unsupported=(PAYLOAD,))
    html = render.render_answer(answer, 1, lambda src: doc)
    html += render.render_hits(answer.hits) + render.render_question(PAYLOAD) + render.render_partial(PAYLOAD)
    html += render.render_error(PAYLOAD)
    assert "<script" not in html and "<img" not in html and "<b>" not in html and "<i>" not in html
    assert "<u>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    tags = set(re.findall(r"<([a-z]+)", html))
    assert tags <= {"div", "span", "a", "p", "mark", "details", "summary", "table", "thead", "tbody", "tr",
                    "th", "td"}


def test_unsupported_sentences_are_flagged_in_place():
    text = "Jane joined [1]. The moon is cheese."
    html = render.render_answer(_answer(text, (_citation(),), unsupported=("The moon is cheese.",)), 1,
                                lambda s: DOC)
    assert re.search(r'<span class="unsupported"[^>]*>The moon is cheese\.', html)
    assert "1 sentence of this answer has no valid citation" in html


def test_abstention_says_so_and_shows_closest_passages():
    html = render.render_answer(_answer("I could not find this in the documents.", abstained=True), 1,
                                lambda s: DOC)
    assert "Not found in the documents" in html
    assert "Closest passages" in html and "TikTok hired Jane Williams" in html
    assert "is-abstained" in html


def test_notices_are_one_line():
    html = render.render_answer(_answer("x", notices=("LLM unreachable", "answered extractively")), 1,
                                lambda s: DOC)
    assert '<p class="notice">ℹ LLM unreachable · answered extractively</p>' in html


def test_citation_of_a_changed_or_missing_document_shows_the_stored_quote():
    def gone(source: str) -> str:
        raise KeyError(source)

    html = render.render_answer(_answer("x [1]", (_citation(),)), 1, gone)
    assert "<mark>TikTok hired Jane Williams from Amazon.</mark>" in html
    short = render.render_answer(_answer("x [1]", (_citation(),)), 1, lambda s: "too short")
    assert "<mark>TikTok hired Jane Williams from Amazon.</mark>" in short


def test_missing_passage_span_falls_back_to_context_around_the_quote():
    s, e = _quote(DOC, "She knows supply chains.")
    cit = Citation(1, "a.txt", s, e, "She knows supply chains.")  # passage_start == passage_end == 0
    html = render.render_answer(_answer("x [1]", (cit,)), 1, lambda src: DOC)
    expected = "Intro line.\nTikTok hired Jane Williams from Amazon. <mark>She knows supply chains.</mark>\nThe end."
    assert expected in html  # blank lines of the context closed up


def test_long_passages_are_trimmed_around_the_quote_at_word_boundaries():
    doc = "word " * 200 + "The quoted sentence." + " tail" * 200
    s, e = _quote(doc, "The quoted sentence.")
    cit = Citation(1, "a.txt", s, e, "The quoted sentence.", passage_start=0, passage_end=len(doc))
    html = render.render_answer(_answer("x [1]", (cit,)), 1, lambda src: doc)
    passage = re.search(r'<div class="passage">(.*?)</div>', html).group(1)
    assert passage.startswith("…word ") and passage.endswith(" tail…")
    assert len(passage) < 2 * render.PASSAGE_CONTEXT + 40


def test_hits_table_shows_scores():
    hit = Hit(1, 0.0312, "a.txt", 0, 11, "Intro line.", (), 4, dense_score=0.71, bm25_score=None)
    html = render.render_hits([hit])
    assert "<td>0.0312</td><td>0.710</td><td></td>" in html and "page 4" in html
    assert "No passages" in render.render_hits([])


# --- uploads --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "expected"), [
    ("report.txt", "report.txt"),
    ("My Report (v2).PDF", "My_Report_v2.pdf"),
    ("../../etc/passwd.md", "passwd.md"),
    ("..\\..\\windows\\evil.html", "evil.html"),
    ("C:\\fakepath\\notes.rst", "notes.rst"),
    (".hidden.txt", "hidden.txt"),
    ("-rf.md", "rf.md"),
    ("a\x00b\nc.txt", "abc.txt"),
    ("<img src=x onerror=alert(1)>.htm", "img_src_x_onerror_alert_1.htm"),
    ("Café résumé.markdown", "Café_résumé.markdown"),
    ("CON.txt", "_CON.txt"),
    ("x" * 300 + ".txt", "x" * 116 + ".txt"),
])
def test_sanitize_filename(name: str, expected: str):
    assert sanitize_filename(name) == expected
    assert sanitize_filename(expected) == expected  # idempotent: the UI and the backend both apply it


@pytest.mark.parametrize(("name", "reason"), [
    ("", "no file name"),
    ("..", "no file name"),
    ("dir/", "no file name"),
    ("README", "no file type"),
    ("evil.exe", "unsupported file type '.exe'"),
    ("archive.tar.gz", "unsupported file type '.gz'"),
    ("....txt", "no usable characters"),
    ("/// .txt", "no usable characters"),
])
def test_sanitize_filename_rejects(name: str, reason: str):
    with pytest.raises(DocumentError) as e:
        sanitize_filename(name)
    assert reason in str(e.value)


def test_check_size():
    check_size("a.txt", 1024, 1.0)
    with pytest.raises(DocumentError, match="empty"):
        check_size("a.txt", 0, 1.0)
    with pytest.raises(DocumentError, match=r"a\.txt: the file is 2\.0 MB; the limit is 1 MB"):
        check_size("a.txt", 2 * 1024 * 1024, 1.0)


def test_target_path_stays_inside_the_documents_folder(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    assert target_path(docs, "../x.txt") == (docs / "x.txt").resolve()
    (docs / "link.txt").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(DocumentError, match="outside the documents folder"):
        target_path(docs, "link.txt")


# --- handlers, against a fake of the Assistant's shape --------------------------------------------------

class _FakeReport:
    skipped = ()
    added = ("My_notes.md",)
    changed = unchanged = ()

    def summary(self) -> str:
        return "documents: 1 added"


class _FakeAssistant:
    """Answers every question with one cited sentence of DOC; records what the UI passed in."""

    def __init__(self, tmp: Path) -> None:
        from assistant.settings import Settings

        self.settings = Settings.load(env={}, docs_dir=tmp, index_dir=tmp / "index", max_upload_mb=0.001)
        self.calls: list[tuple[str, tuple, int | None, str | None]] = []
        self.saved: dict[str, bytes] = {}
        self.fail = False

    @property
    def retriever(self):
        return self  # document_text below

    def ask_stream(self, question, history=(), k=None, mode=None, *, retriever=None):
        from assistant.errors import EndpointError

        self.calls.append((question, tuple(history), k, mode))
        if self.fail:
            raise EndpointError("endpoint unreachable: <refused>")
        text = "Jane Williams joined [1]."
        yield from ("Jane ", "Williams ", "joined [1].")
        yield _answer(text, (_citation(),))

    def ask(self, question, history=(), k=None, mode=None):
        return list(self.ask_stream(question, history, k, mode))[-1]

    def search(self, query, k=None):
        return list(_answer("x").hits)[: k or 5]

    def document_text(self, source: str) -> str:
        return DOC

    def documents(self):
        return []

    def document_count(self) -> int:
        return 0

    def document_statuses(self):
        return []

    indexing = False

    def dense_status(self):
        return 3, 3

    def cancel_indexing(self):
        pass

    def add_documents(self, files, progress=None):
        from assistant.app import Saved, UploadReport
        from assistant.errors import DocumentError
        from assistant.load.uploads import sanitize_filename

        saved, rejected = [], []
        for filename, data in files:
            try:
                name = sanitize_filename(filename)
            except DocumentError as e:
                rejected.append(str(e))
                continue
            self.saved[name] = data
            saved.append(Saved(name))
        return UploadReport(tuple(saved), tuple(rejected), self.update_index(progress))

    def update_index(self, progress=None):
        if progress:
            progress("embedding", 1, 1, "")
        return _FakeReport()

    def llm_status(self) -> str:
        return "not configured"


@pytest.fixture
def handlers(tmp_path: Path):
    from assistant.ui.app import _Handlers

    return _Handlers(_FakeAssistant(tmp_path))


@pytest.fixture
def chat(handlers, tmp_path: Path):
    from assistant.conversations import ConversationStore
    from assistant.ui.chat import ChatHandlers

    return ChatHandlers(handlers.a, ConversationStore(tmp_path / "chat.sqlite3"))


def _session():
    from assistant.conversations import new_browser_id, owner_key
    from assistant.ui.chat import ChatSession

    return ChatSession(owner=owner_key(new_browser_id()))


def test_respond_streams_then_renders_the_cited_answer_and_keeps_history_per_session(chat):
    handlers = chat
    mine, other = _session(), _session()
    steps = list(handlers.respond("Who joined?", mine, 3, "extractive"))
    messages, mine, cleared, _ = steps[-1]
    assert cleared == ""
    assert steps[0][0][-1]["content"].startswith('<div class="answer-text streaming">')
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert 'href="#cite-1-1"' in messages[1]["content"]
    assert [t.question for t in mine.turns] == ["Who joined?"]

    *_, (messages, mine, _, _) = handlers.respond("And then?", mine, 3, "extractive")
    assert 'id="cite-2-1"' in messages[-1]["content"]
    assert handlers.a.calls[-1][1][0].question == "Who joined?"  # the history went to the backend
    assert handlers.a.calls[-1][2:] == (3, "extractive")
    assert other.turns == [] and other.messages == []  # another browser's session is untouched
    stored = handlers.store.turns(mine.owner, mine.cid)
    assert [t.question for t in stored] == ["Who joined?", "And then?"]  # saved, for a reload
    assert handlers.store.list(other.owner) == []


def test_respond_shows_backend_errors_escaped_and_does_not_record_the_turn(chat):
    chat.a.fail = True
    *_, (messages, session, _, _) = chat.respond("Q?", _session(), 5, "llm")
    assert messages[-1]["content"] == '<p class="error">⚠ endpoint unreachable: &lt;refused&gt;</p>'
    assert session.turns == [] and session.pending is None and chat.store.list(session.owner) == []


def test_blank_question_does_nothing(chat):
    (messages, session, _, _), = chat.respond("   ", _session(), 5, "extractive")
    assert messages == [] and chat.a.calls == []


def test_stop_keeps_the_partial_answer_marked_and_saves_nothing(chat):
    session = _session()
    steps = chat.respond("Who joined?", session, 3, "extractive")
    next(steps)  # the empty streaming message
    next(steps)  # "Jane Williams " ... streaming
    messages, session = chat.stop(session)
    assert "Stopped" in messages[-1]["content"] and session.pending is None
    rest = list(steps)
    assert "Stopped" in rest[-1][0][-1]["content"]
    assert session.answers == [] and chat.store.list(session.owner) == []


def test_regenerate_replaces_the_last_answer(chat):
    session = _session()
    list(chat.respond("Who joined?", session, 3, "extractive"))
    *_, (messages, session, _, _) = chat.regenerate(session, 3, "extractive")
    assert [a.question for a in session.answers] == ["Who joined?"] and len(messages) == 2
    assert [t.question for t in chat.store.turns(session.owner, session.cid)] == ["Who joined?"]
    assert [c[0] for c in chat.a.calls] == ["Who joined?", "Who joined?"]


def test_add_files_saves_sanitised_names_and_reports_rejections(handlers, tmp_path: Path):
    from assistant.ui.library import LibraryHandlers

    handlers = LibraryHandlers(handlers.a)
    up = tmp_path / "uploads"
    up.mkdir()
    files = {"My notes.md": b"# Notes\n\nok\n", "big.txt": b"x" * 2048, "tool.exe": b"MZ"}
    for name, data in files.items():
        (up / name).write_bytes(data)
    status, cleared, table, _ = handlers.add_files([str(up / n) for n in files], "", "All", "Name",
                                                   progress=lambda *a, **k: None)
    assert handlers.a.saved == {"My_notes.md": b"# Notes\n\nok\n"}
    assert "✓ Added My_notes.md: 0 passages indexed" in status
    assert "⚠ Not added: big.txt: the file is 0.0 MB; the limit is 0.001 MB" in status
    assert "⚠ Not added: tool.exe: unsupported file type &#x27;.exe&#x27;" in status
    assert status.count("✓") == 1  # a refused file never gets a check mark
    assert cleared is None


def test_api_ask_and_search_return_plain_json(handlers):
    import json

    answer = handlers.api_ask("Who joined?", k=2, history=[["Earlier?", "Earlier answer."]])
    assert answer["answer"] == "Jane Williams joined [1]." and answer["citations"][0]["n"] == 1
    assert handlers.a.calls[-1][1][0].question == "Earlier?"
    found = handlers.api_search("Jane", 1)
    assert found["query"] == "Jane" and len(found["hits"]) == 1
    json.dumps([answer, found])


def test_login_needs_both_user_and_password(tmp_path: Path):
    from assistant.errors import ConfigError
    from assistant.ui.app import launch

    fake = _FakeAssistant(tmp_path)
    fake.settings = fake.settings.replace(auth_user="ann")
    with pytest.raises(ConfigError, match="auth_user and auth_password"):
        launch(fake, block=False)  # type: ignore[arg-type]


def test_build_ui_exposes_named_api_endpoints(tmp_path: Path):
    from assistant.ui.app import build_ui

    demo = build_ui(_FakeAssistant(tmp_path), examples=["Only this one?"])  # type: ignore[arg-type]
    named = demo.get_api_info()["named_endpoints"]
    assert {"/ask", "/search", "/documents"} <= set(named)
    assert [p["parameter_name"] for p in named["/ask"]["parameters"]] == ["question", "k", "mode", "history"]
    assert not any(name.startswith("/respond") for name in named)  # the chat's own events stay private
