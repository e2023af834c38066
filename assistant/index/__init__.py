"""The index on disk: a folder of generations, each a FAISS file, an SQLite file of chunks and documents,
and manifest.json; a CURRENT file names the live generation and is swapped atomically."""

from .build import BuildReport, build_index
from .manifest import Manifest
from .reader import DocInfo, IndexReader, open_index

__all__ = ["BuildReport", "DocInfo", "IndexReader", "Manifest", "build_index", "open_index"]
