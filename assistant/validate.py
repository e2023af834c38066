"""Checks of what a caller asks the assistant: question, history, k and mode, against the bounds in
Settings. One place, so the Python API, the CLI, the web chat and the HTTP API reject the same input
with the same one-line message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import InputError
from .settings import Settings

MODES = ("extractive", "llm")
HISTORY_ANSWER_FACTOR = 10  # an earlier answer may be this many times longer than a question


def check_text(settings: Settings, text: Any, name: str = "question") -> str:
    """`text` stripped; InputError when it is not a string, empty, too long, or not valid Unicode."""
    if not isinstance(text, str):
        raise InputError(f"{name}: must be text, got {type(text).__name__}")
    limit = settings.max_question_chars
    if len(text) > limit:
        raise InputError(f"{name}: {len(text):,} characters; the limit is {limit:,} (max_question_chars)")
    _check_unicode(text, name)
    text = text.strip()
    if not text:
        raise InputError(f"{name}: empty")
    return text


def check_k(settings: Settings, k: Any) -> int | None:
    """None (use settings.k) or a whole number between 1 and settings.max_k."""
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, int | float) or (isinstance(k, float) and not k.is_integer()):
        raise InputError(f"k: must be a whole number, got {k!r}"[:120])
    k = int(k)
    if not 1 <= k <= settings.max_k:
        raise InputError(f"k: must be between 1 and {settings.max_k} (max_k), got {k}")
    return k


def check_mode(mode: Any) -> str | None:
    if mode is None or mode == "":
        return None
    if mode not in MODES:
        raise InputError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}"[:120])
    return str(mode)


def check_history(settings: Settings, history: Sequence[Any]) -> None:
    """At most settings.max_history_turns turns, each with a bounded question and answer."""
    if len(history) > settings.max_history_turns:
        raise InputError(f"history: {len(history)} turns; the limit is {settings.max_history_turns} "
                         "(max_history_turns)")
    limit = settings.max_question_chars
    for i, turn in enumerate(history, start=1):
        q, a = getattr(turn, "question", None), getattr(turn, "answer", None)
        if not isinstance(q, str) or not isinstance(a, str):
            raise InputError(f"history: turn {i} must have a question and an answer as text")
        if len(q) > limit:
            raise InputError(f"history: the question of turn {i} is {len(q):,} characters; the limit is "
                             f"{limit:,} (max_question_chars)")
        if len(a) > HISTORY_ANSWER_FACTOR * limit:
            raise InputError(f"history: the answer of turn {i} is {len(a):,} characters; the limit is "
                             f"{HISTORY_ANSWER_FACTOR * limit:,}")
        _check_unicode(q, f"history: the question of turn {i}")
        _check_unicode(a, f"history: the answer of turn {i}")


def _check_unicode(text: str, name: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"{name}: invalid Unicode (a lone surrogate) at character {e.start}") from None
