"""What the document manager shows: every file the index knows about, indexed or not, with its status and
the one-line reason when it is not (or no longer) indexed as it is now."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .index.library import Library
from .index.reader import IndexReader
from .load import kind_of

STATUSES = ("indexed", "kept", "skipped", "excluded")


@dataclass(frozen=True, slots=True)
class DocumentStatus:
    path: str  # relative to the documents folder
    title: str
    kind: str  # the loader: text, markdown, rst, html, pdf, docx, ...
    size: int  # bytes (of the indexed version, or of the file for one that is not indexed)
    chunks: int
    indexed_at: str  # ISO time, "" when not indexed
    status: str  # indexed | kept (failed to parse, previous version kept) | skipped | excluded
    reason: str = ""  # why it is kept, skipped or excluded, one line
    uploaded: bool = False  # saved through the chat, so the chat may delete it


def document_statuses(reader: IndexReader, docs_dir: Path, library: Library,
                      recent: Mapping[str, str] | None = None) -> list[DocumentStatus]:
    """Indexed documents, documents that failed to parse (with their reason) and excluded files, by path.
    `recent`: skip reasons of the latest updates (the manifest records only files that failed to parse, not
    those the scan passed over, such as a file that became binary)."""
    failed = {rel: str(v.get("reason", "")) for rel, v in reader.manifest.skipped.items()}
    failed |= {rel: why for rel, why in (recent or {}).items() if rel not in library.excluded}
    out: dict[str, DocumentStatus] = {}
    for d in reader.doc_infos:
        reason = failed.get(d.path, "")
        out[d.path] = DocumentStatus(d.path, d.title, kind_of(d.path) or "", d.size, d.chunks, d.indexed_at,
                                     "kept" if reason else "indexed", reason, d.path in library.uploaded)
    for rel, reason in failed.items():
        if rel not in out and rel not in library.excluded:
            out[rel] = DocumentStatus(rel, "", kind_of(rel) or "", _size(docs_dir / rel), 0, "", "skipped",
                                      reason, rel in library.uploaded)
    for rel in library.excluded:
        if rel not in out:
            size = _size(docs_dir / rel)
            why = "excluded from the index; the file stays in the folder" if size >= 0 else \
                "excluded from the index; the file is no longer in the folder"
            out[rel] = DocumentStatus(rel, "", kind_of(rel) or "", max(size, 0), 0, "", "excluded", why,
                                      rel in library.uploaded)
    return [out[r] for r in sorted(out)]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1
