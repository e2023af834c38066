"""Checks for uploaded documents: safe file names, supported types, size limits. Pure functions, so the
backend (`Assistant.add_document`) and the web chat apply the same rules."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from ..errors import DocumentError
from .scan import SUPPORTED_SUFFIXES

MAX_NAME_CHARS = 120

# Anything but letters, digits, "-", "_" and "." becomes "_"; \w is Unicode-aware, so accents survive.
_UNSAFE = re.compile(r"[^\w.\-]+")
_RUNS = re.compile(r"_{2,}")
_WINDOWS_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(1, 10)] + [f"lpt{i}" for i in range(1, 10)])


def sanitize_filename(name: str) -> str:
    """A plain, safe file name for an uploaded `name`, to be saved directly inside the documents folder.

    Only the last path component is kept (either slash, so "../../x.txt" and "C:\\fakepath\\x.txt" give
    "x.txt"); control characters and anything unusual become "_"; no leading dot (hidden files) or dash;
    the suffix must be a supported type and is lower-cased. Raises DocumentError when nothing usable is left.
    """
    original = name
    name = unicodedata.normalize("NFC", name or "")
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")  # controls, format chars, NUL
    name = re.split(r"[/\\]", name)[-1].strip()
    if not name or name in (".", ".."):
        raise DocumentError(_shown(original), "no file name")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        raise DocumentError(_shown(original), f"no file type; supported: {supported_types()}")
    suffix = "." + suffix.strip().lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(_shown(original),
                            f"unsupported file type {suffix!r}; supported: {supported_types()}")
    stem = _UNSAFE.sub("_", stem.strip())
    stem = _RUNS.sub("_", stem).strip("._- ")
    if not stem:
        raise DocumentError(_shown(original), "the file name has no usable characters")
    if stem.split(".")[0].lower() in _WINDOWS_RESERVED:
        stem = "_" + stem
    stem = stem[: MAX_NAME_CHARS - len(suffix)].rstrip("._- ")
    return stem + suffix


def check_size(name: str, size_bytes: int, max_mb: float) -> None:
    """Raise DocumentError if a file of `size_bytes` is empty or larger than `max_mb` megabytes."""
    if size_bytes <= 0:
        raise DocumentError(name, "the file is empty")
    if size_bytes > max_mb * 1024 * 1024:
        size_mb = size_bytes / 1024 / 1024
        raise DocumentError(name, f"the file is {size_mb:.1f} MB; the limit is {max_mb:g} MB")


def target_path(docs_dir: Path, name: str) -> Path:
    """Where the upload `name` is saved: docs_dir / sanitize_filename(name), checked to stay inside docs_dir
    even when docs_dir or an existing entry is a symbolic link."""
    root = docs_dir.resolve()
    target = (root / sanitize_filename(name)).resolve()
    if target.parent != root:
        raise DocumentError(name, "the file would be saved outside the documents folder")
    return target


def supported_types() -> str:
    return " ".join(SUPPORTED_SUFFIXES)


def _shown(name: str) -> str:
    """The rejected name as it appears in a one-line message: no control characters, not too long."""
    shown = "".join(c if unicodedata.category(c)[0] != "C" else "?" for c in name or "")
    return shown if len(shown) <= 80 else shown[:77] + "..."
