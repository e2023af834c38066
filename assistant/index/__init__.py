"""The index on disk: immutable segments (documents and chunks in SQLite, BM25 postings and vectors as
memory-mapped arrays, an IVF file for large ones) and generations, each a manifest.json naming the live
segments; a CURRENT file names the live generation and is swapped atomically."""

from .build import BuildReport, build_index
from .manifest import Manifest
from .reader import DocInfo, IndexReader, open_index

__all__ = ["BuildReport", "DocInfo", "IndexReader", "Manifest", "build_index", "open_index"]
