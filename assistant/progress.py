"""Build progress on a terminal: the file being read, then embedding with a bar, chunks/s and the time
left; on a pipe or a log, a line every 10 % (and for every big file) instead of a redrawn bar."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class ConsoleProgress:
    """A `Progress` callback (stage, done, total, item) that writes to stderr."""

    BIG_FILE = 1 << 20

    def __init__(self, docs_dir: Path | None = None, stream: TextIO | None = None) -> None:
        self.out = stream or sys.stderr
        self.tty = self.out.isatty()
        self.docs_dir = docs_dir
        self.width = 0
        self.last_tenth = -1
        self.started: float | None = None
        self.first_done = 0

    def __call__(self, stage: str, done: int, total: int, item: str = "") -> None:
        if stage == "reading":
            self._reading(done, total, item)
        elif stage == "embedding" and total >= 64:
            self._embedding(done, total)

    def line(self, done: int, total: int, now: float | None = None) -> str:
        """'embedding ########----- 4,210/17,383  61.3 chunks/s  3:35 left'."""
        now = time.monotonic() if now is None else now
        if self.started is None:
            self.started, self.first_done = now, done
        pct = done / total if total else 1.0
        bar = "#" * int(25 * pct)
        text = f"embedding {bar:<25} {done:,}/{total:,}"
        elapsed = now - self.started
        if elapsed > 0.5 and done > self.first_done:
            rate = (done - self.first_done) / elapsed
            text += f"  {rate:.1f} chunks/s  {_clock((total - done) / rate)} left"
        return text

    def _embedding(self, done: int, total: int) -> None:
        text = self.line(done, total)
        if self.tty:
            print("\r" + text.ljust(self.width), end="" if done < total else "\n", file=self.out, flush=True)
            self.width = len(text)
            return
        tenth = 10 * done // total
        if tenth != self.last_tenth:
            self.last_tenth = tenth
            print(text, file=self.out, flush=True)

    def _reading(self, done: int, total: int, item: str) -> None:
        if self.tty:
            text = f"reading {done + 1}/{total} {item}"[:100] if item else ""
            print("\r" + text.ljust(self.width), end="\r" if not item else "", file=self.out, flush=True)
            self.width = len(text)
            return
        if not item:
            return
        big = False
        if self.docs_dir is not None:
            with contextlib.suppress(OSError):
                big = (self.docs_dir / item).stat().st_size >= self.BIG_FILE
        if big or done % max(1, total // 20) == 0:
            print(f"reading {done + 1}/{total} {item}", file=self.out, flush=True)
