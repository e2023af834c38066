"""Many servers, one database: two chat servers on one PostgreSQL store (an upload through one answers from
the other, without a restart), and an indexer killed mid-update (the previous documents still answer, no
document is left half-written, and the next run completes). Real model, real PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import ARTICLES
from tests.servers import ROOT, free_port
from tests.test_ui_server import _ADD_VIEW, _add_event, _file_data, _run_event, _upload

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]

BAKERY = b"The Zephyr Bakery\n\nThe Zephyr Bakery in Troms\xc3\xb8 was founded by Ingrid Solberg in 1987.\n"


def test_an_upload_through_one_server_is_answerable_from_the_other(tmp_path: Path, articles: Path, pg_url: str,
                                                                   real_embedder) -> None:
    from assistant.app import Assistant
    from assistant.settings import Settings
    from assistant.ui.app import launch

    demos = []
    try:
        for i in range(2):  # one shared documents folder, one database; each server its own cache folder
            s = Settings.load(env={}, docs_dir=articles, index_dir=tmp_path / f"cache{i}", store=pg_url)
            a = Assistant.open(s, embedder=real_embedder)
            demos.append(launch(a, host="127.0.0.1", port=free_port(), block=False, quiet=True))
        first, second = (httpx.Client(base_url=d.local_url.rstrip("/"), timeout=60) for d in demos)
        before = second.post("/v1/ask", json={"question": "Who founded the Zephyr Bakery?"}).json()
        assert before["abstained"]
        path = _upload(first, "zephyr.txt", BAKERY).json()[0]
        status = _run_event(first, _add_event(demos[0]), [[_file_data(path, "zephyr.txt")], *_ADD_VIEW])[0]
        assert "Added zephyr.txt" in status, status
        after = second.post("/v1/ask", json={"question": "Who founded the Zephyr Bakery?"}).json()
        assert not after["abstained"] and "Ingrid Solberg" in after["answer"], after
        cite = after["citations"][0]
        assert cite["source"] == "zephyr.txt"
        assert BAKERY.decode()[cite["start"]:cite["end"]] == cite["quote"]
        listed = second.get("/v1/documents").json()
        assert "zephyr.txt" in str(listed)
    finally:
        for d in demos:
            d.close(verbose=False)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "assistant", *args]


def test_a_killed_indexer_leaves_the_previous_documents_answering(tmp_path: Path, articles: Path, pg_url: str,
                                                                  real_embedder) -> None:
    common = ["--store", pg_url, "--index-dir", str(tmp_path / "cache"), "--backend", "torch"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run(_cli("index", str(articles), *common), capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr
    for i in range(240):  # enough new text for several batches of embeddings, each committed per document
        body = "\n\n".join(f"Note {i}.{j}: the lighthouse keeper number {i} logged {j} storms near harbour {i * j}."
                           for j in range(12))
        (articles / f"note-{i:03d}.txt").write_text(body + "\n", encoding="utf-8")
    proc = subprocess.Popen(_cli("index", str(articles), *common), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        with psycopg.connect(pg_url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                n = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
                if n > 2:
                    break
                assert proc.poll() is None, "the indexer finished before it could be killed"
                time.sleep(0.02)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            docs, chunks = conn.execute("SELECT count(*), sum(chunks) FROM documents").fetchone()
            assert 2 < docs < 242, docs  # killed mid-update
            # No partial document: every document has all its chunks, postings and vectors.
            assert conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == chunks
            assert conn.execute("SELECT count(*) FROM documents d WHERE chunks <> "
                                "(SELECT count(*) FROM chunks c WHERE c.document = d.id)").fetchone()[0] == 0
            assert conn.execute("SELECT chunks FROM corpus").fetchone()[0] == chunks
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    from assistant.app import Assistant
    from assistant.settings import Settings

    s = Settings.load(env={}, docs_dir=articles, index_dir=tmp_path / "cache", store=pg_url, backend="torch")
    answer = Assistant.open(s, embedder=real_embedder, build=False).ask("Who is Alex Turner?")  # as it was left
    assert not answer.abstained and "Alex Turner" in answer.text
    assert {c.source for c in answer.citations} <= {p.name for p in ARTICLES.iterdir()}
    again = subprocess.run(_cli("index", str(articles), *common), capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr
    added = int(again.stdout.split(" added")[0].rsplit(" ", 1)[-1])
    assert 0 < added < 240 and ", 0 removed" in again.stdout, again.stdout
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 242
