"""manifest.json: what an index was built from, so a stale index never meets new settings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import IndexMismatchError
from .segment import SegmentMeta

FORMAT_VERSION = 4  # 2: segments (postings, vector parts, deletions); 3: documents record size and mtime;
# 4: postings blocks (block-max)


@dataclass
class Manifest:
    format_version: int
    package_version: str
    model: str
    dimension: int
    max_seq_length: int
    chunk_tokens: int
    chunk_overlap: int
    chunker_version: int
    tokenizer: str
    built_at: str = ""
    build_seconds: float = 0.0
    chunks: int = 0
    backend: str = ""  # how the model ran ("torch", "openvino-int8", ...): vectors of two backends never mix
    vectors: int = -1  # chunks that have a dense vector; -1 (indexes written before vectors filled in): all
    documents: int = 0  # live documents (their records are in the segments)
    segments: list[dict[str, Any]] = field(default_factory=list)  # SegmentMeta.to_json() of the live segments
    ann_threshold: int = 0  # a segment with this many vectors or more is searched by its ANN index; 0: never
    ann_nprobe: int = 0  # IVF lists probed per query
    skipped: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> sha256, reason, size, mtime_ns
    docs_dir: str = ""  # the documents folder, absolute; query commands use it by default
    docs_dir_from_index: str = ""  # the same folder relative to the index folder, if the two move together

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1, sort_keys=True), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> Manifest:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = set(cls.__dataclass_fields__)
        if isinstance(data.get("documents"), dict):  # format 1 listed the documents here
            data["documents"] = len(data["documents"])
        return cls(**{k: v for k, v in data.items() if k in known})

    def segment_metas(self) -> list[SegmentMeta]:
        return [SegmentMeta.from_json(d) for d in self.segments]

    def with_segments(self, metas: Sequence[SegmentMeta]) -> Manifest:
        """A copy naming `metas` as the live segments, with the counts that follow from them."""
        return replace(self, segments=[m.to_json() for m in metas], chunks=sum(m.live for m in metas),
                       vectors=sum(m.vectors - m.deleted_vectors for m in metas),
                       documents=sum(m.docs - m.deleted_docs for m in metas))

    def build_key(self) -> dict[str, Any]:
        """The settings that, when changed, make every vector stale."""
        return {"format_version": self.format_version, "model": self.model,
                "chunk_tokens": self.chunk_tokens, "chunk_overlap": self.chunk_overlap,
                "chunker_version": self.chunker_version, "tokenizer": self.tokenizer,
                "backend": self.backend or "torch"}

    def differences(self, other: Manifest) -> list[str]:
        mine, theirs = self.build_key(), other.build_key()
        return [f"{k}: index has {mine[k]!r}, settings say {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]

    @property
    def dense_count(self) -> int:
        return self.chunks if self.vectors < 0 else self.vectors

    @property
    def pending(self) -> int:
        """Chunks still waiting for their dense vector: searchable lexically meanwhile."""
        return max(0, self.chunks - self.dense_count)

    def built_from(self, index_dir: Path) -> Path | None:
        """The documents folder this index was built from: the recorded absolute path, or the recorded path
        relative to the index folder when only that one still exists (both were moved together)."""
        if not self.docs_dir:
            return None
        recorded = Path(self.docs_dir)
        if not recorded.is_dir() and self.docs_dir_from_index:
            moved = (index_dir / self.docs_dir_from_index).resolve()
            if moved.is_dir():
                return moved
        return recorded

    def check(self, wanted: Manifest, index_dir: Path) -> None:
        diff = self.differences(wanted)
        if diff:
            raise IndexMismatchError(
                f"index in {index_dir} was built with other settings ({'; '.join(diff)}); "
                f"rebuild it: assistant index --rebuild --index-dir {index_dir}")
