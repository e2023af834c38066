"""The web chat. `build_ui`/`serve` import Gradio, so they load on first use: the backend can import
`assistant.ui` without paying for it."""

from __future__ import annotations

from typing import Any

__all__ = ["build_ui", "launch", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
