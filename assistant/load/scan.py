"""Find the documents under a folder: which files can be loaded, their content hashes, why the rest cannot."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DocumentError

SUPPORTED_SUFFIXES: tuple[str, ...] = (".txt", ".md", ".markdown", ".rst", ".adoc", ".asciidoc", ".html", ".htm",
                                       ".pdf", ".docx", ".pptx", ".ipynb", ".epub")

_KINDS = {".txt": "text", ".md": "markdown", ".markdown": "markdown", ".rst": "rst", ".adoc": "asciidoc",
          ".asciidoc": "asciidoc", ".html": "html", ".htm": "html", ".pdf": "pdf", ".docx": "docx", ".pptx": "pptx",
          ".ipynb": "ipynb", ".epub": "epub"}
BINARY_KINDS = frozenset(("pdf", "docx", "pptx", "epub"))  # containers, not text: never sniffed as binary
_SNIFF = 8192  # how much of a text-type file is looked at to tell text from binary
_UTF16_32_BOMS = (b"\xff\xfe", b"\xfe\xff")  # UTF-16/32 text is full of NULs and is not binary
# Control bytes that text never holds (tab, line feed, form feed, carriage return and escape are text).
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 27)) + b"\x7f"
_CONTROL_SHARE = 0.03  # binary when more than this share of the sniffed bytes are control bytes


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: Path  # absolute path
    rel: str  # POSIX path relative to the scanned root
    sha256: str  # hex sha256 of the raw bytes
    size: int
    mtime_ns: int = 0


@dataclass(frozen=True, slots=True)
class Skipped:
    rel: str
    reason: str  # one line


def kind_of(rel: str) -> str | None:
    """The loader a file name calls for ("text", "markdown", "rst", "asciidoc", "html", "pdf", "docx", "pptx",
    "ipynb", "epub"), or None if unsupported."""
    name = rel.rsplit("/", 1)[-1].lower()
    if name.endswith(".rst.txt"):
        return "rst"  # Sphinx ships its sources as *.rst.txt
    return _KINDS.get(os.path.splitext(name)[1])


def looks_binary(head: bytes) -> bool:
    """True if the first bytes of a text-type file are not text: more than one control byte and more than
    3 % of them (images, archives, executables, UTF-16 without a byte-order mark). A stray NUL byte or
    two in a text file do not make it binary."""
    sample = head[:_SNIFF]
    if sample.startswith(_UTF16_32_BOMS):
        return False
    controls = len(sample) - len(sample.translate(None, _CONTROL))
    return controls > 1 and controls > _CONTROL_SHARE * len(sample)


Known = Mapping[str, tuple[int, int, str]]  # rel -> (size, mtime_ns, sha256) recorded when last indexed


def scan_folder(root: Path, max_mb: float | None = None, known: Known | None = None
                ) -> tuple[list[SourceFile], list[Skipped]]:
    """Walk `root` recursively and hash every supported file. Hidden files and folders are ignored;
    symlinks that leave `root` (or point at a folder), unsupported types, files over `max_mb` megabytes,
    empty, binary and unreadable files are returned as `Skipped` with a reason. Both lists are sorted by
    `rel`. A file whose size and modification time (to the nanosecond) are those `known` records is not
    read again: its recorded hash stands, so an update of a large folder reads only what changed."""
    root = Path(root).absolute()
    if not root.exists():
        raise DocumentError(str(root), "no such folder")
    if not root.is_dir():
        raise DocumentError(str(root), "not a folder")
    real_root = root.resolve()
    found: list[SourceFile] = []
    skipped: list[Skipped] = []
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            skipped.append(Skipped(prefix.rstrip("/") or ".", _os_reason(e)))
            continue
        for entry in entries:
            rel = prefix + entry.name
            if entry.name.startswith("."):
                continue  # .git, .DS_Store, editor swap files: never documents, not worth a line each
            try:
                if entry.is_symlink():
                    path = folder / entry.name
                    target = path.resolve()
                    if not target.exists():
                        skipped.append(Skipped(rel, "broken symlink"))
                        continue
                    if not target.is_relative_to(real_root):
                        skipped.append(Skipped(rel, "symlink points outside the folder"))
                        continue
                    if target.is_dir():
                        # Its target is inside the folder and scanned there; following it could loop.
                        skipped.append(Skipped(rel, "symlink to a folder inside the folder"))
                        continue
                if entry.is_dir():
                    stack.append((folder / entry.name, rel + "/"))
                    continue
                item = _scan_file(entry.path, rel, max_mb, known)
            except OSError as e:
                item = Skipped(rel, _os_reason(e))
            (found if isinstance(item, SourceFile) else skipped).append(item)
    found.sort(key=lambda f: f.rel)
    skipped.sort(key=lambda s: s.rel)
    return found, skipped


def scan_paths(root: Path, rels: Sequence[str], max_mb: float | None = None, known: Known | None = None
               ) -> tuple[list[SourceFile], list[Skipped], list[str]]:
    """Scan only the files `rels` (POSIX paths relative to `root`), as scan_folder would: (files, skipped,
    the ones that are not there). A path outside `root`, hidden, or through a symlink that leaves it is
    skipped with its reason."""
    root = Path(root).absolute()
    real_root = root.resolve()
    found: list[SourceFile] = []
    skipped: list[Skipped] = []
    missing: list[str] = []
    for rel in dict.fromkeys(rels):
        path = root / rel
        parts = Path(rel).parts
        if not rel or Path(rel).is_absolute() or ".." in parts:
            skipped.append(Skipped(rel, "not a path inside the documents folder"))
            continue
        if any(p.startswith(".") for p in parts):
            continue  # hidden, as scan_folder ignores it
        try:
            if not path.exists() and not path.is_symlink():
                missing.append(rel)
                continue
            if not path.resolve().is_relative_to(real_root):
                skipped.append(Skipped(rel, "symlink points outside the folder"))
                continue
            if path.is_dir():
                skipped.append(Skipped(rel, "a folder, not a file"))
                continue
            item = _scan_file(str(path), rel, max_mb, known)
        except OSError as e:
            item = Skipped(rel, _os_reason(e))
        (found if isinstance(item, SourceFile) else skipped).append(item)
    return sorted(found, key=lambda f: f.rel), sorted(skipped, key=lambda s: s.rel), sorted(missing)


def _scan_file(path: str, rel: str, max_mb: float | None = None, known: Known | None = None
               ) -> SourceFile | Skipped:
    kind = kind_of(rel)
    if kind is None:
        suffix = os.path.splitext(rel.rsplit("/", 1)[-1])[1].lower() or "(no extension)"
        return Skipped(rel, f"unsupported type {suffix}")
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        return Skipped(rel, "not a regular file")  # opening a FIFO would block
    if st.st_size == 0:
        return Skipped(rel, "empty file")
    if max_mb is not None and st.st_size > max_mb * 1024 * 1024:
        return Skipped(rel, f"{st.st_size / 1024 / 1024:.1f} MB, over the {max_mb:g} MB limit (max_file_mb)")
    seen = known.get(rel) if known is not None else None
    if seen is not None and seen[0] == st.st_size and seen[1] == st.st_mtime_ns and seen[1]:
        return SourceFile(Path(path), rel, seen[2], st.st_size, st.st_mtime_ns)
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        head = f.read(_SNIFF)
        if kind not in BINARY_KINDS and looks_binary(head):
            return Skipped(rel, "binary file")
        while head:
            h.update(head)
            size += len(head)
            head = f.read(1 << 20)
    if size == 0:
        return Skipped(rel, "empty file")
    return SourceFile(Path(path), rel, h.hexdigest(), size, st.st_mtime_ns)


def _os_reason(e: OSError) -> str:
    return e.strerror or (str(e).splitlines() or [type(e).__name__])[0]
