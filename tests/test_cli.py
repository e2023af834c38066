"""The CLI: fast help, one-line errors with exit codes, JSON shapes, the index summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    e = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True,
                          env=e, cwd=cwd, timeout=600)


def test_help_is_fast_and_does_not_import_torch() -> None:
    code = ("import sys; from assistant.cli import build_parser; build_parser().format_help(); "
            "bad = [m for m in ('torch', 'faiss', 'sentence_transformers', 'gradio') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr
    res = run("--help")
    assert res.returncode == 0 and "index" in res.stdout and "ask" in res.stdout


def test_missing_documents_folder_is_a_one_line_error(tmp_path: Path) -> None:
    res = run("index", str(tmp_path / "nope"), "--index-dir", str(tmp_path / "index"))
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("error: ")
    assert "nope" in res.stderr


def test_bad_setting_is_a_one_line_error(tmp_path: Path) -> None:
    res = run("index", "--chunk-tokens", "100", "--chunk-overlap", "90", "--index-dir", str(tmp_path))
    assert res.returncode == 2 and "chunk_overlap" in res.stderr and "Traceback" not in res.stderr


def test_bad_environment_value_is_a_one_line_error(tmp_path: Path) -> None:
    res = run("index", "--index-dir", str(tmp_path), env={"ASSISTANT_K": "many"})
    assert res.returncode == 2 and "k: expected int" in res.stderr


@pytest.mark.slow
def test_index_search_ask_end_to_end(tmp_path: Path, articles: Path) -> None:
    idx = str(tmp_path / "index")
    res = run("index", str(articles), "--index-dir", idx)
    assert res.returncode == 0, res.stderr
    assert "2 added" in res.stdout and "chunks:" in res.stdout
    res = run("index", str(articles), "--index-dir", idx)
    assert "2 unchanged" in res.stdout and "(0 embedded)" in res.stdout

    res = run("search", "Alex Turner", "--docs", str(articles), "--index-dir", idx, "--json", "--k", "3")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["query"] == "Alex Turner" and len(data["hits"]) <= 3 and "timings_ms" in data
    h = data["hits"][0]
    assert {"rank", "score", "source", "start", "end", "text"} <= set(h)
    text = (articles / h["source"]).read_text(encoding="utf-8")
    assert text[h["start"]:h["end"]] == h["text"]

    q = "What expertise do the Amazon and Meta veterans bring to TikTok?"
    res = run("ask", q, "--docs", str(articles), "--index-dir", idx, "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["question"] == q and not data["abstained"] and data["citations"]
    for c in data["citations"]:
        text = (articles / c["source"]).read_text(encoding="utf-8")
        assert text[c["start"]:c["end"]] == c["quote"]

    res = run("ask", "What is the capital of France?", "--docs", str(articles), "--index-dir", idx)
    assert res.returncode == 0 and "don't contain" in res.stdout

    # --only: the named files alone; another file changed meanwhile is left for the next full scan.
    (articles / "penguins.txt").write_text("Emperor penguins breed in the Antarctic winter.\n", encoding="utf-8")
    other = articles / "tiktok-shop-shifts-control-to-china.txt"
    other.write_text(other.read_text(encoding="utf-8") + "\nA closing line.\n", encoding="utf-8")
    res = run("index", str(articles), "--index-dir", idx, "--only", "penguins.txt")
    assert res.returncode == 0 and "1 added, 0 changed" in res.stdout, res.stdout + res.stderr
    (articles / "penguins.txt").unlink()
    res = run("index", str(articles), "--index-dir", idx, "--only", str(articles / "penguins.txt"))
    assert res.returncode == 0 and "0 changed, 0 unchanged, 1 removed" in res.stdout, res.stdout + res.stderr
    res = run("index", str(articles), "--index-dir", idx)
    assert "1 changed" in res.stdout


@pytest.mark.slow
def test_chat_keeps_the_conversation(tmp_path: Path, articles: Path) -> None:
    e = {**os.environ, "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-m", "assistant", "chat", "--docs", str(articles), "--index-dir",
                          str(tmp_path / "index")], input="Who is Alex Turner?\nWhat is his expertise?\n\n",
                         capture_output=True, text=True, env=e, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "Alex Turner" in res.stdout
    assert "user behavior analysis" in res.stdout or "personalized marketing" in res.stdout
    assert res.stdout.count("[1] tiktok-") >= 2, "each answer lists its sources"
