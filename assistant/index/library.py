"""Bookkeeping about the documents folder, kept beside the index in `library.json`: the files the user
excluded from the index (they stay on disk; every scan passes them over) and the files saved through the
chat (the only ones the chat may ever delete, and only while their bytes are still the ones it saved).
Plain JSON, replaced atomically, bounded."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DocumentError

LIBRARY = "library.json"
MAX_ENTRIES = 100_000  # per list: a folder larger than this is not managed one file at a time
_lock = threading.Lock()  # one read-modify-write at a time within a process


@dataclass
class Library:
    excluded: set[str] = field(default_factory=set)
    uploaded: dict[str, str] = field(default_factory=dict)  # rel -> sha256 of the bytes the chat saved

    @classmethod
    def read(cls, index_dir: Path) -> Library:
        """The library of `index_dir`; an empty one if there is none yet. A damaged file is an error, not an
        empty library: that would silently bring every excluded document back."""
        path = Path(index_dir) / LIBRARY
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as e:
            raise DocumentError(str(path), f"unreadable ({type(e).__name__}); fix or delete it") from None
        if not isinstance(raw, dict):
            raise DocumentError(str(path), "not a JSON object; fix or delete it")
        excluded = {str(r) for r in raw.get("excluded", []) if isinstance(r, str)}
        uploaded = {str(r): str(h) for r, h in dict(raw.get("uploaded", {})).items() if isinstance(h, str)}
        return cls(excluded, uploaded)

    def write(self, index_dir: Path) -> None:
        if len(self.excluded) > MAX_ENTRIES or len(self.uploaded) > MAX_ENTRIES:
            raise DocumentError(LIBRARY, f"more than {MAX_ENTRIES:,} entries")
        index_dir = Path(index_dir)
        index_dir.mkdir(parents=True, exist_ok=True)
        tmp = index_dir / f".{LIBRARY}.{os.getpid()}-{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps({"excluded": sorted(self.excluded), "uploaded": dict(sorted(self.uploaded.items()))},
                                  indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, index_dir / LIBRARY)


def update(index_dir: Path, *, exclude: str | None = None, include: str | None = None,
           uploaded: tuple[str, str] | None = None, forget: str | None = None) -> Library:
    """Read, change and write the library in one step: `exclude`/`include` a path, record an upload
    (path, sha256), or `forget` a path altogether (its file was deleted)."""
    with _lock:
        lib = Library.read(index_dir)
        if exclude is not None:
            lib.excluded.add(exclude)
        if include is not None:
            lib.excluded.discard(include)
        if uploaded is not None:
            lib.uploaded[uploaded[0]] = uploaded[1]
        if forget is not None:
            lib.excluded.discard(forget)
            lib.uploaded.pop(forget, None)
        lib.write(index_dir)
        return lib
