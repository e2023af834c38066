"""Loading and chunking do work linear in a document's size. Nothing is timed: the test counts the Python
lines executed plus the characters that string searches and slices of the document text touch, for a
generated input and for one eight times as long, and requires the count to grow at most about as much."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import pytest

from assistant.chunk import chunk_document
from assistant.load import load_bytes

_GROWTH = 8
_LIMIT = 10  # a linear cost grows 8 times (fixed costs make it less); a quadratic one 64 times


class _Over(BaseException):
    """Not an Exception, so that no `except Exception` in the code under test swallows it."""


class _Work:
    """Counts 'line' trace events and characters touched through `_Text`; stops the run past `limit`."""

    def __init__(self, limit: float) -> None:
        self.n = 0
        self.limit = limit

    def add(self, k: int) -> None:
        self.n += k
        if self.n > self.limit:
            raise _Over

    def trace(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            self.add(1)
        return self.trace

    def run(self, fn: Callable[[], object]) -> int:
        global _WORK
        _WORK = self
        sys.settrace(self.trace)
        try:
            fn()
        except _Over:
            pass
        finally:
            sys.settrace(None)
            _WORK = None
        return self.n


_WORK: _Work | None = None


class _Text(str):
    """A document text that reports the characters its searches and slices scan (C-level work that line
    events do not see)."""

    def _touch(self, k: int) -> None:
        if _WORK is not None:
            _WORK.add(max(1, k))

    def __getitem__(self, key: Any) -> str:
        if isinstance(key, slice):
            a, b, _ = key.indices(len(self))
            self._touch(b - a)
        else:
            self._touch(1)
        return str.__getitem__(self, key)

    def _span(self, start: Any, end: Any) -> int:
        a, b, _ = slice(start, end).indices(len(self))
        return b - a

    def find(self, sub: Any, start: Any = None, end: Any = None) -> int:
        self._touch(self._span(start, end))
        return str.find(self, sub, start, end)

    def rfind(self, sub: Any, start: Any = None, end: Any = None) -> int:
        self._touch(self._span(start, end))
        return str.rfind(self, sub, start, end)

    def index(self, sub: Any, start: Any = None, end: Any = None) -> int:
        self._touch(self._span(start, end))
        return str.index(self, sub, start, end)

    def count(self, sub: Any, start: Any = None, end: Any = None) -> int:
        self._touch(self._span(start, end))
        return str.count(self, sub, start, end)


def _sentences(i: int, k: int) -> str:
    # Capitalised sentences, lowercase continuations ("it. then"), abbreviations and a numbered line.
    return " ".join((f"Sentence {i}.{j} says e.g. something about topic {j % 7}. then it goes on."
                     if j % 3 else f"Part {i} has {j} items, i.e. many.") for j in range(k))


def _markdown(n: int) -> bytes:
    parts = ["# Generated guide\n"]
    for i in range(20 * n):
        parts.append(f"\n## Section {i}\n\n{_sentences(i, 4)}\n\n1. First step of {i}.\n2. Second step.\n\n"
                     f"### Detail {i}\n\n{_sentences(i, 3)}\n")
    return "".join(parts).encode()


def _rst(n: int) -> bytes:
    parts = ["Generated guide\n===============\n"]
    for i in range(20 * n):
        parts.append(f"\nSection {i}\n-----------\n\n{_sentences(i, 4)}\n\nDetail {i}\n~~~~~~~~~~\n\n"
                     f"{_sentences(i, 3)}\n")
    return "".join(parts).encode()


def _plain(n: int) -> bytes:
    parts = ["Generated Guide\n"]
    for i in range(20 * n):
        parts.append(f"\nSection Number {i}\n\n{_sentences(i, 5)}\n")
    return "".join(parts).encode()


def _one_line(n: int) -> bytes:
    """No line break at all: 1 MB files like this come out of some exporters."""
    return _sentences(0, 30 * n).encode()


def _html(n: int) -> bytes:
    parts = ["<html><head><title>Generated</title><style>p {}</style></head><body><main><h1>Guide</h1>"]
    for i in range(20 * n):
        parts.append(f"<h2>Section {i}</h2><p>{_sentences(i, 3)}</p><div><div>&amp; more &lt;text&gt;</div>"
                     f"</div><script>var x = {i};</script><dl><dt>term{i} (integer)</dt><dd>Defines {i}.</dd>"
                     f"</dl>")
    parts.append("<ol>" + "".join(f"<li>Item {i}.</li>" for i in range(10 * n)) + "</ol></main></body></html>")
    return "".join(parts).encode()


_INPUTS = {"guide.md": _markdown, "guide.rst": _rst, "guide.txt": _plain, "line.txt": _one_line,
           "page.html": _html}


def _chars(texts: list[str]) -> list[int]:
    return [len(t) // 2 + 2 for t in texts]  # about twice tiktoken's count: every chunk is re-cut


def _chunkings(name: str, n: int) -> list[Callable[[], object]]:
    doc = load_bytes(name, _INPUTS[name](n))
    doc = dataclasses.replace(doc, text=_Text(doc.text))
    return [lambda: chunk_document(doc, tokens=128, overlap=24),
            lambda: chunk_document(doc, tokens=128, overlap=24, max_model_tokens=256, count_model=_chars),
            lambda: chunk_document(doc, tokens=64, overlap=8, max_model_tokens=24, count_model=_chars)]


def _ratio(small: Callable[[], object], large: Callable[[], object]) -> tuple[int, int]:
    small()  # warm caches (tiktoken's encoding, compiled patterns) outside the count
    base = _Work(float("inf")).run(small)
    return base, _Work(_LIMIT * base).run(large)


@pytest.mark.parametrize("name", sorted(_INPUTS))
def test_loading_is_linear(name: str) -> None:
    base, big = _ratio(lambda: load_bytes(name, _INPUTS[name](1)), lambda: load_bytes(name, _INPUTS[name](_GROWTH)))
    assert big < _LIMIT * base, f"{_GROWTH}x the input took more than {big / base:.1f}x the work"


@pytest.mark.parametrize("how", range(3), ids=["plain", "fit", "char-windows"])
@pytest.mark.parametrize("name", sorted(_INPUTS))
def test_chunking_is_linear(name: str, how: int) -> None:
    small, large = _chunkings(name, 1)[how], _chunkings(name, _GROWTH)[how]
    base, big = _ratio(small, large)
    assert big < _LIMIT * base, f"{_GROWTH}x the input took more than {big / base:.1f}x the work"
