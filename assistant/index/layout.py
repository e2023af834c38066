"""Generations and segments on disk, the atomically swapped CURRENT pointer, and the writer lock."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import IndexLockedError, IndexNotFoundError

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
SEGMENTS = "segments"


def current_generation(index_dir: Path) -> Path | None:
    pointer = index_dir / CURRENT
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    gen = index_dir / name
    return gen if (gen / MANIFEST).is_file() else None


def require_generation(index_dir: Path) -> Path:
    gen = current_generation(index_dir)
    if gen is None:
        raise IndexNotFoundError(f"no index in {index_dir}: build it with `assistant index`")
    return gen


def new_generation(index_dir: Path) -> Path:
    index_dir.mkdir(parents=True, exist_ok=True)
    gen = index_dir / f".tmp-gen-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    gen.mkdir()
    return gen


def new_segment(index_dir: Path) -> Path:
    """The folder for a new segment (not created): unique, and ordered by creation time."""
    root = index_dir / SEGMENTS
    root.mkdir(parents=True, exist_ok=True)
    return root / f"seg-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**9:09d}"


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish(index_dir: Path, tmp_gen: Path) -> Path:
    """Make `tmp_gen` the live generation: rename it, then atomically replace CURRENT. A crash at any point
    leaves CURRENT naming a complete generation."""
    for f in tmp_gen.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if (index_dir / SEGMENTS).is_dir():
        for seg in (index_dir / SEGMENTS).iterdir():  # new segments' directory entries are durable first
            fsync_dir(seg)
        fsync_dir(index_dir / SEGMENTS)
    final = index_dir / tmp_gen.name.removeprefix(".tmp-")
    tmp_gen.rename(final)
    tmp_pointer = index_dir / f".{CURRENT}.tmp"
    with open(tmp_pointer, "w", encoding="utf-8") as fh:
        fh.write(final.name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp_pointer, index_dir / CURRENT)
    fsync_dir(index_dir)
    return final


_SEGMENT_FILES = ("rows-", "vectors-", "deleted-", "ann-")  # the files added to a segment after it was written


def collect_garbage(index_dir: Path, keep: Path | None) -> None:
    """Remove generations other than `keep`, the segments and segment files it does not name, and leftovers
    of interrupted builds. Called only by the writer (or under its lock): readers that have a segment open
    keep reading it, since an open file outlives its name."""
    for p in index_dir.iterdir():
        if p.is_dir() and (p.name.startswith("gen-") or p.name.startswith(".tmp-gen-")) and p != keep:
            shutil.rmtree(p, ignore_errors=True)
    root = index_dir / SEGMENTS
    if not root.is_dir():
        return
    try:
        live = json.loads((keep / MANIFEST).read_text(encoding="utf-8")).get("segments", []) if keep else []
    except (OSError, ValueError):
        return  # unreadable: remove nothing
    named = {d["name"]: _files_of(d) for d in live}
    for seg in root.iterdir():
        if seg.name not in named:
            shutil.rmtree(seg, ignore_errors=True)
            continue
        for f in seg.iterdir():
            if f.name.startswith(_SEGMENT_FILES) and f.name not in named[seg.name]:
                f.unlink(missing_ok=True)


def _files_of(meta: dict) -> set[str]:
    files = {f"rows-{p}.npy" for p, _ in meta.get("parts", [])} | {f"vectors-{p}.npy" for p, _ in meta.get("parts", [])}
    if meta.get("deleted"):
        files.add(meta["deleted"])
    if meta.get("ann"):
        files.add(meta["ann"]["file"])
    return files


@contextlib.contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    """One writer at a time per index folder; readers never take it, so they never wait."""
    import fcntl

    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexLockedError(f"another process is writing the index in {index_dir}") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def clean_if_idle(index_dir: Path) -> None:
    """Remove stale generations when no writer is at work (a reader's chance to clean up after a build
    that was killed between its swap and its cleanup); does nothing when a writer holds the lock or the
    folder cannot be written."""
    with contextlib.suppress(IndexLockedError, OSError), writer_lock(index_dir):
        collect_garbage(index_dir, keep=current_generation(index_dir))
