"""Document loaders: find the files under a folder and turn each into a `records.Document`.

`scan_folder` says which files can be loaded (and why the others cannot); `load_file` and `load_bytes`
parse one file and raise only `DocumentError`, so one bad file never stops the others.
"""

from __future__ import annotations

import hashlib
import logging
import os

from ..errors import DocumentError
from ..records import Document
from .scan import BINARY_KINDS, SUPPORTED_SUFFIXES, Skipped, SourceFile, kind_of, looks_binary, scan_folder, scan_paths

__all__ = ["SUPPORTED_SUFFIXES", "Skipped", "SourceFile", "kind_of", "load_bytes", "load_file", "scan_folder",
           "scan_paths"]


def load_file(src: SourceFile) -> Document:
    """Parse one scanned file. Document.sha256 is the hash of the bytes actually parsed, which is
    `src.sha256` unless the file changed since the scan."""
    try:
        data = src.path.read_bytes()
    except OSError as e:
        raise DocumentError(src.rel, e.strerror or type(e).__name__) from e
    return load_bytes(src.rel, data)


def load_bytes(rel: str, data: bytes) -> Document:
    """Parse the contents of a file named `rel` (its suffix picks the loader) into a Document."""
    kind = kind_of(rel)
    if kind is None:
        suffix = os.path.splitext(rel.rsplit("/", 1)[-1])[1].lower() or "(no extension)"
        raise DocumentError(rel, f"unsupported type {suffix}")
    if not data:
        raise DocumentError(rel, "empty file")
    if kind not in BINARY_KINDS and looks_binary(data):
        raise DocumentError(rel, "binary file")
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        if kind == "pdf":
            from .pdf import load_pdf

            # pypdf logs every repair it makes ("EOF marker not found") to stderr; a file that cannot be
            # read is reported once, as this file's skip reason, instead.
            logging.getLogger("pypdf").setLevel(logging.ERROR)

            doc = load_pdf(rel, data, sha256)
        elif kind in ("docx", "pptx"):
            from .office import load_docx, load_pptx

            doc = (load_docx if kind == "docx" else load_pptx)(rel, data, sha256)
        elif kind == "epub":
            from .epub import load_epub

            doc = load_epub(rel, data, sha256)
        elif kind == "ipynb":
            from .notebook import load_ipynb

            doc = load_ipynb(rel, data, sha256)
        elif kind == "html":
            from .html import load_html

            doc = load_html(rel, data, sha256)
        else:
            from .text import load_text

            doc = load_text(rel, data, sha256, kind)
    except DocumentError:
        raise
    except Exception as e:  # a parser bug or a file it chokes on: still one line about one file
        detail = (str(e).splitlines() or [""])[0]
        raise DocumentError(rel, f"could not be parsed ({type(e).__name__}: {detail})"[:300]) from e
    if not doc.text.strip():
        raise DocumentError(rel, "no text")
    return doc
