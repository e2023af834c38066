"""The defects a hostile test found, one test (or a few) each: wrong citations after an update, an index
rebuilt from another folder, unbounded input, uploads that lie or overwrite, readers waiting for writers,
leftovers and small leaks, start-up paths. The fake embedder keeps them fast; the model is never loaded
here unless a test says so."""

from __future__ import annotations

import contextlib
import fcntl
import socket
from pathlib import Path

import pytest

from assistant.app import Assistant
from assistant.cli import main
from assistant.embed import HashEmbedder, LazyEmbedder
from assistant.errors import DocumentError, IndexLockedError, IndexMismatchError, InputError
from assistant.index import build_index, layout, open_index
from assistant.settings import Settings

BAKERY = ("The Zephyr Bakery\n\n"
          "The Zephyr Bakery in Tromso was founded by Ingrid Solberg in 1987.\n"
          "The bakery closes every Tuesday so that the ovens can be cleaned.\n"
          "Its signature pastry is the cardamom knot, baked every morning at five.\n")
OLD = "The bakery closes every Tuesday so that the ovens can be cleaned."
NEW = "Penguins from Antarctica migrate north to breed on rocky islands."


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every model load goes to a fake embedder and is recorded: commands under test never load the real
    model, and a test can assert that one was not loaded at all."""
    calls: list[str] = []

    def fake(self: LazyEmbedder) -> HashEmbedder:
        calls.append(self.model_id)
        return HashEmbedder()

    monkeypatch.setattr(LazyEmbedder, "_load", fake)
    return calls


def _bakery(tmp_path: Path) -> Settings:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bakery.txt").write_text(BAKERY, encoding="utf-8")
    return Settings.load(env={}, docs_dir=docs, index_dir=tmp_path / "index")


# --- 1. a citation is always the current text -------------------------------------------------------------

def test_a_replaced_sentence_is_never_quoted_for_the_old_question(tmp_path: Path) -> None:
    settings = _bakery(tmp_path)
    a = Assistant.open(settings, embedder=HashEmbedder())
    question = "When does the bakery close so that the ovens can be cleaned?"
    assert [c.quote for c in a.ask(question).citations][:1] == [OLD]

    assert len(NEW) == len(OLD)  # same offsets: a cache keyed by (source, start, end) would hit
    (settings.docs_dir / "bakery.txt").write_text(BAKERY.replace(OLD, NEW), encoding="utf-8")
    assert a.update_index().changed == ("bakery.txt",)
    live = a.ask(question)
    fresh = Assistant.open(settings, embedder=HashEmbedder(), build=False).ask(question)
    assert all("Penguins" not in c.quote for c in live.citations)
    assert [(c.quote, c.start) for c in live.citations] == [(c.quote, c.start) for c in fresh.citations]
    text = a.document_text("bakery.txt")
    assert all(text[c.start:c.end] == c.quote for c in live.citations)


# --- 2. an index is never silently rebuilt from another folder or with other settings ------------------

def _docs(root: Path, name: str, text: str) -> Path:
    root.mkdir()
    (root / name).write_text(text, encoding="utf-8")
    return root


def test_query_commands_use_the_folder_and_settings_the_index_was_built_with(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], loads) -> None:
    mine = _docs(tmp_path / "mine", "bakery.txt", BAKERY)
    _docs(tmp_path / "documents", "other.txt", "Quokkas live on Rottnest Island near Perth.\n")
    monkeypatch.chdir(tmp_path)  # ./documents is another folder
    index = tmp_path / "idx"
    assert main(["index", str(mine), "--index-dir", str(index), "--chunk-tokens", "64",
                 "--chunk-overlap", "8"]) == 0
    before = sorted(p.name for p in index.iterdir())
    capsys.readouterr()

    assert main(["search", "When does the bakery close?", "--index-dir", str(index), "--json"]) == 0
    out, err = capsys.readouterr()
    assert '"source": "bakery.txt"' in out and "other.txt" not in out
    assert "rebuilt" not in err and "index updated" not in err
    assert sorted(p.name for p in index.iterdir()) == before  # nothing written
    manifest = open_index(index).manifest
    assert (manifest.chunk_tokens, manifest.chunk_overlap, list(open_index(index).documents)) == (64, 8, ["bakery.txt"])

    assert main(["ask", "When does the bakery close?", "--index-dir", str(index)]) == 0
    assert "Tuesday" in capsys.readouterr().out
    assert sorted(p.name for p in index.iterdir()) == before


def test_a_query_command_refuses_another_folder_and_says_what_to_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], loads) -> None:
    mine = _docs(tmp_path / "mine", "bakery.txt", BAKERY)
    other = _docs(tmp_path / "other", "other.txt", "Quokkas live on Rottnest Island near Perth.\n")
    index = tmp_path / "idx"
    assert main(["index", str(mine), "--index-dir", str(index)]) == 0
    capsys.readouterr()
    assert main(["search", "quokka", "--docs", str(other), "--index-dir", str(index)]) == 1
    err = capsys.readouterr().err
    assert f"was built from {mine}" in err and f"assistant index {other} --index-dir {index}" in err
    assert list(open_index(index).documents) == ["bakery.txt"]  # untouched

    # The index command is the explicit way, and it says what it did.
    assert main(["index", str(other), "--index-dir", str(index)]) == 0
    out = capsys.readouterr().out
    assert "rebuilt everything (documents folder changed" in out
    assert list(open_index(index).documents) == ["other.txt"]


def test_other_explicit_chunk_settings_rebuild_with_a_printed_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], loads) -> None:
    mine = _docs(tmp_path / "mine", "bakery.txt", BAKERY)
    index = tmp_path / "idx"
    assert main(["index", str(mine), "--index-dir", str(index), "--chunk-tokens", "64"]) == 0
    capsys.readouterr()
    assert main(["ask", "When does the bakery close?", "--index-dir", str(index), "--chunk-tokens", "100"]) == 0
    err = capsys.readouterr().err
    assert "rebuilt everything (settings changed: chunk_tokens: index has 64, settings say 100)" in err
    assert open_index(index).manifest.chunk_tokens == 100


def test_the_python_api_refuses_an_index_of_another_folder(tmp_path: Path) -> None:
    settings = _bakery(tmp_path)
    Assistant.open(settings, embedder=HashEmbedder())
    other = _docs(tmp_path / "other", "other.txt", "Quokkas live on Rottnest Island near Perth.\n")
    with pytest.raises(IndexMismatchError, match="was built from"):
        Assistant.open(settings.replace(docs_dir=other), embedder=HashEmbedder())
    assert list(open_index(settings.index_dir).documents) == ["bakery.txt"]


# --- 3. big files: a bound and progress (linearity: tests/test_chunk_linear.py) ------------------------------

def test_a_file_over_max_file_mb_is_skipped_with_its_name_and_the_limit(tmp_path: Path) -> None:
    settings = _bakery(tmp_path).replace(max_file_mb=0.5)
    (settings.docs_dir / "huge.txt").write_text("All work and no play. " * 40_000, encoding="utf-8")
    report = build_index(settings, embedder=HashEmbedder())
    assert report.added == ("bakery.txt",)
    assert [(s.rel, s.reason) for s in report.skipped] == [("huge.txt", "0.8 MB, over the 0.5 MB limit (max_file_mb)")]


def test_the_build_reports_each_file_it_reads(tmp_path: Path) -> None:
    settings = _bakery(tmp_path)
    (settings.docs_dir / "second.txt").write_text("Another document about bread.\n", encoding="utf-8")
    seen: list[tuple[str, int, int, str]] = []
    build_index(settings, embedder=HashEmbedder(), progress=lambda *a: seen.append(a))
    reading = [s for s in seen if s[0] == "reading"]
    assert reading[:2] == [("reading", 0, 2, "bakery.txt"), ("reading", 1, 2, "second.txt")]


# --- 4. bounded, validated input everywhere --------------------------------------------------------------

@pytest.fixture
def bakery(tmp_path: Path) -> Assistant:
    return Assistant.open(_bakery(tmp_path).replace(max_question_chars=200, max_history_turns=3, max_k=10),
                          embedder=HashEmbedder())


@pytest.mark.parametrize(("call", "message"), [
    (lambda a: a.ask("x" * 201), "question: 201 characters; the limit is 200 (max_question_chars)"),
    (lambda a: a.ask("   "), "question: empty"),
    (lambda a: a.ask("bakery \ud800?"), "question: invalid Unicode (a lone surrogate) at character 7"),
    (lambda a: a.ask(None), "question: must be text, got NoneType"),
    (lambda a: a.ask("bakery?", k=11), "k: must be between 1 and 10 (max_k), got 11"),
    (lambda a: a.ask("bakery?", k=0), "k: must be between 1 and 10 (max_k), got 0"),
    (lambda a: a.ask("bakery?", k=-3), "k: must be between 1 and 10 (max_k), got -3"),
    (lambda a: a.ask("bakery?", k="5"), "k: must be a whole number, got '5'"),
    (lambda a: a.ask("bakery?", k=2.5), "k: must be a whole number, got 2.5"),
    (lambda a: a.ask("bakery?", mode="magic"), "mode: must be one of extractive, llm, got 'magic'"),
    (lambda a: a.search("x" * 201), "query: 201 characters; the limit is 200 (max_question_chars)"),
    (lambda a: a.search("bakery", k=10_000), "k: must be between 1 and 10 (max_k), got 10000"),
    (lambda a: a.retriever.search(""), "query: empty"),
])
def test_bad_input_is_a_clear_error_before_any_work(bakery: Assistant, call, message: str) -> None:
    with pytest.raises(InputError) as e:
        call(bakery)
    assert str(e.value) == message


def test_history_is_bounded(bakery: Assistant) -> None:
    from assistant.records import Turn

    with pytest.raises(InputError, match=r"history: 4 turns; the limit is 3 \(max_history_turns\)"):
        bakery.ask("bakery?", history=[Turn("q", "a")] * 4)
    with pytest.raises(InputError, match="history: the question of turn 1 is 201 characters"):
        bakery.ask("bakery?", history=[Turn("q" * 201, "a")])
    assert not bakery.ask("When does the bakery close?", history=[Turn("q", "a")] * 3).abstained


def test_the_http_api_turns_bad_input_into_an_error_with_a_message(bakery: Assistant) -> None:
    import gradio as gr

    from assistant.ui.app import _Handlers

    h = _Handlers(bakery)
    for call, message in [
        (lambda: h.api_ask("bakery?", k=10_000), "k: must be between 1 and 10"),
        (lambda: h.api_ask("bakery?", k="many"), "k: must be a whole number"),
        (lambda: h.api_ask("bakery?", mode="poetry"), "mode: must be one of"),
        (lambda: h.api_ask(""), "question: empty"),
        (lambda: h.api_ask("bakery?", history="not a list"), "history: must be a list"),
        (lambda: h.api_ask("bakery?", history=[[1, 2]]), "history: turn 1 must be"),
        (lambda: h.api_search("q" * 500), "query: 500 characters"),
    ]:
        with pytest.raises(gr.Error) as e:
            call()
        assert e.value.message and message in e.value.message


def test_the_cli_rejects_bad_input_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     loads) -> None:
    mine = _docs(tmp_path / "mine", "bakery.txt", BAKERY)
    assert main(["index", str(mine), "--index-dir", str(tmp_path / "idx")]) == 0
    capsys.readouterr()
    assert main(["ask", "  ", "--index-dir", str(tmp_path / "idx")]) == 2
    assert capsys.readouterr().err.strip() == "error: question: empty"
    assert main(["search", "bakery", "--k", "-1", "--index-dir", str(tmp_path / "idx")]) == 2
    assert "k: must be between 1 and 50 (max_k), got -1" in capsys.readouterr().err


# --- 5. uploads never overwrite and never lie ------------------------------------------------------------

def test_an_upload_never_replaces_an_existing_document(bakery: Assistant) -> None:
    docs = bakery.settings.docs_dir
    first = bakery.add_document("a b.md", b"# Notes\n\nThe first notes.\n")
    second = bakery.add_document("a_b.md", b"# Notes\n\nOther notes entirely.\n")
    again = bakery.add_document("a b.md", b"# Notes\n\nThe first notes.\n")
    assert (first.name, first.note) == ("a_b.md", "")
    assert second.name == "a_b-2.md" and second.note == "saved as a_b-2.md: another a_b.md is already there"
    assert again.name == "a_b.md" and "already in the documents folder" in again.note
    assert (docs / "a_b.md").read_bytes() == b"# Notes\n\nThe first notes.\n"
    assert (docs / "a_b-2.md").read_bytes() == b"# Notes\n\nOther notes entirely.\n"
    assert not [p for p in docs.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("picture.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary file"),
    ("broken.pdf", b"%PDF-1.4\nnot really a pdf at all", "unreadable PDF"),
    ("blank.html", b"<html><body><script>x()</script></body></html>", "no text"),
])
def test_a_file_that_cannot_be_indexed_is_refused_and_not_left_behind(bakery: Assistant, name: str,
                                                                      data: bytes, reason: str) -> None:
    before = sorted(p.name for p in bakery.settings.docs_dir.iterdir())
    up = bakery.add_documents([(name, data)])
    assert up.saved == () and len(up.rejected) == 1 and reason in up.rejected[0] and name in up.rejected[0]
    assert sorted(p.name for p in bakery.settings.docs_dir.iterdir()) == before


def test_uploads_are_indexed_and_reported(bakery: Assistant) -> None:
    up = bakery.add_documents([("notes.md", b"# Notes\n\nThe quokka lives near Perth.\n"),
                               ("tool.exe", b"MZ")])
    assert [s.name for s in up.saved] == ["notes.md"] and up.build is not None and up.build.added == ("notes.md",)
    assert up.rejected == ("tool.exe: unsupported file type '.exe'; supported: .txt .md .markdown .rst .adoc "
                           ".asciidoc .html .htm .pdf .docx .pptx .ipynb .epub",)
    assert "notes.md" in {d.path for d in bakery.documents()}


# --- 6. readers never wait for writers -------------------------------------------------------------------

@contextlib.contextmanager
def _held_writer_lock(index_dir: Path):
    with open(index_dir / ".lock", "a+") as fh:  # another open file description: as another process
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def test_readers_open_the_live_index_while_a_writer_holds_the_lock(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], loads) -> None:
    settings = _bakery(tmp_path)
    Assistant.open(settings, embedder=HashEmbedder())
    (settings.docs_dir / "new.txt").write_text("A new document about rye bread.\n", encoding="utf-8")
    with _held_writer_lock(settings.index_dir):
        a = Assistant.open(settings, embedder=HashEmbedder())
        assert a.notices == ("another process is updating the index; answering from its current version",)
        assert not a.ask("When does the bakery close?").abstained
        capsys.readouterr()
        assert main(["search", "bakery", "--index-dir", str(settings.index_dir)]) == 0
        out, err = capsys.readouterr()
        assert "bakery.txt" in out and "another process is updating the index" in err
        with pytest.raises(IndexLockedError):  # writers still exclude each other
            build_index(settings, embedder=HashEmbedder())


def test_no_index_yet_and_a_writer_building_it_is_a_clear_error(tmp_path: Path) -> None:
    settings = _bakery(tmp_path)
    settings.index_dir.mkdir()
    with _held_writer_lock(settings.index_dir), pytest.raises(IndexLockedError, match="try again when"):
        Assistant.open(settings, embedder=HashEmbedder())


# --- 7. leftovers and small leaks ------------------------------------------------------------------------

def test_stale_generations_are_cleaned_on_open_and_on_build(tmp_path: Path) -> None:
    settings = _bakery(tmp_path)
    build_index(settings, embedder=HashEmbedder())
    live = layout.current_generation(settings.index_dir)
    for name in ("gen-20200101-000000-1-1", ".tmp-gen-20200101-000000-1-2"):  # a build killed after its swap
        (settings.index_dir / name).mkdir()
        (settings.index_dir / name / "vectors.faiss").write_bytes(b"old")
    segments = settings.index_dir / "segments"
    live_segments = sorted(p.name for p in segments.iterdir())
    (segments / "seg-20200101-000000-1-1").mkdir()  # a segment no generation names (a killed build's)
    open_index(settings.index_dir)
    assert sorted(p.name for p in settings.index_dir.iterdir() if p.is_dir()) == [live.name, "segments"]
    assert sorted(p.name for p in segments.iterdir()) == live_segments
    (settings.index_dir / "gen-20200101-000000-1-3").mkdir()
    build_index(settings, embedder=HashEmbedder())  # nothing to do, but cleans up
    assert sorted(p.name for p in settings.index_dir.iterdir() if p.is_dir()) == [live.name, "segments"]


def test_remove_document_removes_only_indexed_documents(bakery: Assistant) -> None:
    docs = bakery.settings.docs_dir
    (docs / ".secret").write_text("keep me", encoding="utf-8")
    (docs / "notes.odt").write_bytes(b"PK keep me too")
    for name in (".secret", "notes.odt", "../docs/.secret", "missing.txt"):
        with pytest.raises(DocumentError, match="not an indexed document"):
            bakery.remove_document(name)
    assert (docs / ".secret").exists() and (docs / "notes.odt").exists()
    bakery.remove_document("bakery.txt")
    assert (docs / "bakery.txt").exists()  # excluded from the index, never deleted unasked
    assert "bakery.txt" not in {d.path for d in bakery.documents()}


def test_a_bad_file_is_not_parsed_again_nor_the_model_loaded(tmp_path: Path, loads,
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    settings = _bakery(tmp_path)
    (settings.docs_dir / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n")
    first = build_index(settings, embedder=LazyEmbedder(settings.model))
    assert [s.rel for s in first.skipped] == ["broken.pdf"] and loads == [settings.model]
    assert "EOF marker" not in capfd.readouterr().err  # pypdf's log lines stay off the console
    for _ in range(2):
        again = build_index(settings, embedder=LazyEmbedder(settings.model))
        assert not again.wrote and [s.rel for s in again.skipped] == ["broken.pdf"]
        assert again.skipped[0].reason == first.skipped[0].reason
    assert loads == [settings.model]  # not loaded again
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no parser complaints either
    (settings.docs_dir / "broken.pdf").write_text("now a text file? no: still a .pdf", encoding="utf-8")
    assert build_index(settings, embedder=LazyEmbedder(settings.model)).skipped[0].rel == "broken.pdf"


# --- 8. start-up paths -----------------------------------------------------------------------------------

def test_a_busy_port_is_one_line_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str], loads) -> None:
    mine = _docs(tmp_path / "mine", "bakery.txt", BAKERY)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["serve", "--docs", str(mine), "--index-dir", str(tmp_path / "idx"), "--port", str(port)])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: port {port} is in use; pass --port"
    assert loads == [] and not (tmp_path / "idx").exists()


def test_a_missing_folder_is_reported_before_the_model_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              loads) -> None:
    assert main(["ask", "q?", "--docs", str(tmp_path / "nope"), "--index-dir", str(tmp_path / "idx")]) == 1
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope'}: no such folder"
    assert loads == []


def test_an_empty_folder_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str], loads) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.odt").write_bytes(b"PK")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["serve", "--docs", str(tmp_path / "empty"), "--index-dir", str(tmp_path / "idx"),
                 "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert "no documents to index (supported: .txt .md" in err and "add files to the folder or pass --docs" in err
    assert "readme.odt (unsupported type .odt)" in err
    assert loads == []


@pytest.mark.slow
def test_library_noise_stays_off_the_console_unless_verbose(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    docs = _docs(tmp_path / "docs", "bakery.txt", BAKERY)

    def run(*extra: str) -> str:
        cmd = [sys.executable, "-m", "assistant.cli", "search", "bakery", "--docs", str(docs), "--index-dir",
               str(tmp_path / "idx"), "--backend", "torch"] + list(extra)
        env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}  # set by loads here
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                             env={**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
        assert out.returncode == 0, out.stderr
        return out.stderr

    quiet = run()
    assert "Loading weights" not in quiet and "it/s" not in quiet and "Warning" not in quiet
    assert quiet.splitlines()[-1].startswith("index updated: documents: 1 added")
    assert "Loading weights" in run("--verbose")
