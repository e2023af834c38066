"""Real servers for the HTTP API tests: `assistant serve`'s launch() on a free loopback port."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.openai_server import free_port  # noqa: F401  (the API tests take it from here)

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Who is Alex Turner?"
USER, PASSWORD, TOKEN = "reader", "s3cret-pass", "tok-0123456789abcdef"


@contextmanager
def launched(assistant: Any) -> Iterator[str]:
    """The web chat and its HTTP API over `assistant`, as `assistant serve` starts them; yields the base URL."""
    from assistant.ui.app import launch

    demo = launch(assistant, host="127.0.0.1", port=free_port(), block=False, quiet=True)
    try:
        yield demo.local_url.rstrip("/")
    finally:
        demo.close(verbose=False)


def hash_assistant(root: Path, embedder: Any = None, **changes: Any) -> Any:
    """An Assistant over a copy of the articles with the fast fake embedder (settings `changes` applied)."""
    from assistant.app import Assistant
    from assistant.embed import HashEmbedder
    from assistant.settings import Settings

    shutil.copytree(ROOT / "documents", root / "docs")
    settings = Settings.load(env={}, docs_dir=root / "docs", index_dir=root / "index").replace(**changes)
    return Assistant.open(settings, embedder=embedder or HashEmbedder())
