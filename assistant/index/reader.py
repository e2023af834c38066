"""Open the live generation of an index: manifest checked, everything read into memory once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..records import Chunk, Document
from . import chunkdb, layout
from .manifest import Manifest
from .vectors import FaissStore, faiss_id


@dataclass(frozen=True, slots=True)
class DocInfo:
    path: str
    title: str
    chunks: int
    indexed_at: str


@dataclass(frozen=True)
class IndexReader:
    """An immutable snapshot of one generation; safe to share between threads."""

    path: Path
    manifest: Manifest
    store: FaissStore
    chunks: tuple[Chunk, ...]
    row_of_id: dict[int, int]  # FAISS id -> index into `chunks`
    documents: dict[str, Document]
    doc_infos: tuple[DocInfo, ...]

    @property
    def complete(self) -> bool:
        """Every chunk has its dense vector (otherwise dense search covers only those that do)."""
        return self.manifest.pending == 0

    def chunk_for_faiss_id(self, fid: int) -> Chunk | None:
        row = self.row_of_id.get(int(fid))
        return None if row is None else self.chunks[row]


def open_index(index_dir: Path, wanted: Manifest | None = None) -> IndexReader:
    """Read the live generation. A writer may swap in a newer one and delete this one meanwhile: then the
    newer one is read instead."""
    for attempt in range(3):
        gen = layout.require_generation(index_dir)
        try:
            reader = _open_generation(index_dir, gen, wanted)
        except Exception:
            if attempt == 2 or layout.current_generation(index_dir) == gen:
                raise
            continue  # swapped out (and perhaps deleted) while being read: read the new one
        layout.clean_if_idle(index_dir)
        return reader
    raise AssertionError("unreachable")


def _open_generation(index_dir: Path, gen: Path, wanted: Manifest | None) -> IndexReader:
    manifest = Manifest.read(gen / layout.MANIFEST)
    if wanted is not None:
        manifest.check(wanted, index_dir)
    store = FaissStore.load(gen / layout.VECTORS)
    con = chunkdb.connect(gen / layout.CHUNKS)
    try:
        docs = chunkdb.read_documents(con)
        chunks = tuple(chunkdb.read_chunks(con))
    finally:
        con.close()
    row_of_id = {faiss_id(c.id): i for i, c in enumerate(chunks)}
    infos = tuple(DocInfo(p, d.title, n, at) for p, (d, n, at) in sorted(docs.items()))
    if len(row_of_id) != manifest.chunks or len(store) != manifest.dense_count:
        from ..errors import IndexMismatchError

        raise IndexMismatchError(f"index in {index_dir} is inconsistent ({len(store)} vectors, "
                                 f"{len(row_of_id)} chunks): rebuild it with `assistant index --rebuild`")
    return IndexReader(gen, manifest, store, chunks, row_of_id, {p: d for p, (d, _, _) in docs.items()}, infos)

