"""Publishing a generation: a manifest naming the live segments, made live atomically."""

from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path

from . import layout
from .manifest import Manifest

_counter = itertools.count()


def tag() -> str:
    """A short name for a file added to a segment: unique in this index, ordered by time."""
    return f"{time.time_ns():x}{next(_counter) % 4096:03x}"


def publish_manifest(index_dir: Path, manifest: Manifest) -> Path:
    """Write `manifest` as a new generation and make it live; remove what no generation names any more.
    The segment files it names must already be written and fsynced."""
    tmp = layout.new_generation(index_dir)
    try:
        manifest.write(tmp / layout.MANIFEST)
        final = layout.publish(index_dir, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    layout.collect_garbage(index_dir, keep=final)
    return final
