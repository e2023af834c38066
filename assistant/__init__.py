"""Offline-first, cited question answering over a folder of documents.

    from assistant import Assistant, Settings
    a = Assistant.open(Settings.load(docs_dir="documents", index_dir="index"))
    print(a.ask("Who did TikTok hire from Meta?").text)

Names are imported on first use, so `import assistant` stays cheap (no torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Assistant": "assistant.app",
    "Settings": "assistant.settings",
    "Retriever": "assistant.retrieve",
    "build_index": "assistant.index",
    "BuildReport": "assistant.index",
    "DocInfo": "assistant.index",
    "Answer": "assistant.records",
    "Citation": "assistant.records",
    "Hit": "assistant.records",
    "Turn": "assistant.records",
    "Document": "assistant.records",
    "Chunk": "assistant.records",
    "AssistantError": "assistant.errors",
}
__all__ = [
    "Answer", "Assistant", "AssistantError", "BuildReport", "Chunk", "Citation", "DocInfo", "Document", "Hit",
    "Retriever", "Settings", "Turn", "build_index",
]

if TYPE_CHECKING:
    from .app import Assistant
    from .errors import AssistantError
    from .index import BuildReport, DocInfo, build_index
    from .records import Answer, Chunk, Citation, Document, Hit, Turn
    from .retrieve import Retriever
    from .settings import Settings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'assistant' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
