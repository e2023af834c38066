"""Keeping the segments few and fast: merges (tiered, and `assistant index --optimize`) and ANN indexes.

After a build or a fill has published its generation, `maintain` merges when one size tier holds
MERGE_FACTOR segments or a segment is mostly deleted rows, and gives every complete segment of at least
`ann_threshold` vectors its IVF index. A merge copies the live documents, chunks and vectors of its
segments into a new one (nothing is embedded again) and publishes a generation naming it instead of them:
readers see the old segments or the new one, never a mix, and a kill leaves the previous generation.
"""

from __future__ import annotations

import math
import shutil
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..settings import Settings
from . import layout
from .commit import publish_manifest, tag
from .manifest import Manifest
from .reader import IndexReader, open_generation
from .segment import Segment, SegmentMeta, SegmentWriter, write_part
from .vectors import REFINE, build_ann, factory_for, nprobe_for

MERGE_FACTOR = 4  # segments of one size tier that are merged into one
TIER_FLOOR = 2048  # segments below this many live rows share the lowest tier
MOSTLY_DELETED = 0.5  # a segment with more deleted rows than this share is rewritten


def tier(live: int) -> int:
    return 0 if live < TIER_FLOOR else 1 + int(math.log(live / TIER_FLOOR, MERGE_FACTOR))


def plan(metas: Sequence[SegmentMeta], optimize: bool = False) -> list[int]:
    """The positions of the segments to merge next, or []."""
    if optimize:
        return list(range(len(metas))) if len(metas) > 1 or any(m.deleted_rows for m in metas) else []
    for i, m in enumerate(metas):
        if m.rows and m.deleted_rows / m.rows > MOSTLY_DELETED:
            return [i]
    tiers: dict[int, list[int]] = {}
    for i, m in enumerate(metas):
        tiers.setdefault(tier(m.live), []).append(i)
    for t in sorted(tiers):
        if len(tiers[t]) >= MERGE_FACTOR:
            return tiers[t]
    return []


class Cancelled(Exception):
    """A merge stopped by its cancel event (its unfinished segment is removed)."""


def merge(reader: IndexReader, picks: Sequence[int], folder: Path, cancel: threading.Event | None = None
          ) -> SegmentMeta:
    """Copy the live documents, chunks and vectors of the `picks` segments into a new segment in `folder`."""
    writer = SegmentWriter(folder)
    new_rows: list[np.ndarray] = []
    vecs: list[np.ndarray] = []
    try:
        for si in picks:
            seg = reader.segments[si]
            has = seg.has_vector() if seg.parts else None
            for doc, rows, indexed_at, stat in seg.iter_documents():
                if cancel is not None and cancel.is_set():
                    raise Cancelled
                chunks = seg.chunks(list(rows))
                got = np.array(writer.add(doc, [chunks[r] for r in rows], indexed_at, stat), dtype=np.int32)
                if has is not None:
                    old = np.arange(rows.start, rows.stop)
                    with_vec = has[old]
                    if with_vec.any():
                        new_rows.append(got[with_vec])
                        vecs.append(seg.vectors_of(old[with_vec]))
        meta = writer.finish()
    except BaseException:
        writer.abort()
        raise
    if new_rows:
        meta.parts = [write_part(folder, tag(), np.concatenate(new_rows), np.concatenate(vecs))]
    return meta


def maintain(settings: Settings, optimize: bool = False, cancel: threading.Event | None = None) -> list[str]:
    """Merge and index what the policy says, publishing a generation after each step; what was done, one
    line each. The caller holds the writer lock. `cancel` stops between steps and inside a merge (which is
    then dropped: the index stays as it was before it)."""
    index_dir = settings.index_dir
    gen = layout.current_generation(index_dir)
    if gen is None:
        return []
    manifest = Manifest.read(gen / layout.MANIFEST)
    done: list[str] = []
    optimize_asked = optimize
    metas = manifest.segment_metas()
    empty = [m for m in metas if m.live == 0]
    if empty:  # every row deleted: the segment is simply no longer named
        manifest = _publish(index_dir, manifest, [m for m in metas if m.live > 0])
        done.append(f"dropped {len(empty)} empty segment(s)")
    while manifest.pending == 0:
        if cancel is not None and cancel.is_set():
            return done
        metas = manifest.segment_metas()
        picks = plan(metas, optimize)
        optimize = False
        if not picks:
            break
        reader = open_generation(index_dir, layout.require_generation(index_dir), None)
        folder = layout.new_segment(index_dir)
        try:
            merged = merge(reader, picks, folder, cancel)
        except Cancelled:
            shutil.rmtree(folder, ignore_errors=True)
            return done
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            reader.close()
        rest = [m for i, m in enumerate(metas) if i not in picks]
        rest.insert(min(picks), merged)
        manifest = _publish(index_dir, manifest, rest)
        done.append(f"merged {len(picks)} segment(s) into one of {merged.rows:,} chunks")
    if cancel is not None and cancel.is_set():
        return done
    manifest, lines = _ann(settings, index_dir, manifest, rebuild=optimize_asked)
    return done + lines


def _ann(settings: Settings, index_dir: Path, manifest: Manifest, rebuild: bool = False
         ) -> tuple[Manifest, list[str]]:
    """Give each complete segment at or above the threshold its IVF index; drop those below it. `rebuild`
    (`assistant index --optimize`): an index of another kind than factory_for's now (written by an
    earlier version) is built again; otherwise it stays, searched with today's nprobe and refine."""
    metas = manifest.segment_metas()
    threshold, nprobe = settings.ann_threshold, settings.ann_nprobe
    lines: list[str] = []
    changed = False
    for m in metas:
        wants = threshold > 0 and m.live >= threshold and m.vectors - m.deleted_vectors == m.live
        if wants and rebuild and m.ann and m.ann.get("factory") != factory_for(m.live, manifest.dimension):
            m.ann = {}  # built again below; the old file goes with the generation that named it
        if m.ann and (not wants or int(m.ann.get("nprobe", 0)) != nprobe_for(_nlist(m.ann), nprobe)
                      or int(m.ann.get("refine", 0)) != REFINE):
            if wants:  # the search settings of an index written before: the file stays as it is
                m.ann = {**m.ann, "nprobe": nprobe_for(_nlist(m.ann), nprobe), "refine": REFINE}
            else:
                m.ann = {}
            changed = True
        if wants and not m.ann:
            reader = open_generation(index_dir, layout.require_generation(index_dir), None)
            try:
                seg = next(s for s in reader.segments if s.meta.name == m.name)
                rows, vecs = _live_vectors(seg)
            finally:
                reader.close()
            m.ann = build_ann(index_dir / layout.SEGMENTS / m.name, tag(), rows, vecs, nprobe)
            lines.append(f"ANN index {m.ann['factory']} for a segment of {m.live:,} chunks")
            changed = True
    if changed:
        manifest = _publish(index_dir, _with_ann_settings(manifest, settings), metas)
    return manifest, lines


def _nlist(ann: dict) -> int:
    return int(str(ann["factory"]).removeprefix("IVF").split(",")[0])


def _with_ann_settings(manifest: Manifest, settings: Settings) -> Manifest:
    return replace(manifest, ann_threshold=settings.ann_threshold, ann_nprobe=settings.ann_nprobe)


def _live_vectors(seg: Segment) -> tuple[np.ndarray, np.ndarray]:
    rows = np.concatenate([np.asarray(r) for r, _ in seg.parts])
    vecs = np.concatenate([np.asarray(v) for _, v in seg.parts])
    mask = seg.deleted_mask()
    if mask is not None:
        live = ~mask[rows]
        rows, vecs = rows[live], vecs[live]
    return rows.astype(np.int64), vecs


def _publish(index_dir: Path, manifest: Manifest, metas: list[SegmentMeta]) -> Manifest:
    fresh = manifest.with_segments(metas)
    publish_manifest(index_dir, fresh)
    return fresh
