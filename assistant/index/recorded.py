"""What an existing index records about how it was built, as defaults for the commands that use it: an
index built with `assistant index DOCS --chunk-tokens 200 --index-dir X` is queried with
`assistant ask "..." --index-dir X`, and neither the folder nor the chunk settings have to be repeated
(nor does a default silently replace them)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from ..settings import Settings
from . import layout
from .manifest import Manifest

# Settings an index is built with; the others (k, mode, ...) are the query's own business.
RECORDED = ("docs_dir", "model", "backend", "chunk_tokens", "chunk_overlap")


def recorded_manifest(index_dir: Path) -> Manifest | None:
    gen = layout.current_generation(index_dir)
    if gen is None:
        return None
    try:
        return Manifest.read(gen / layout.MANIFEST)
    except (OSError, ValueError):
        return None


def settings_of_index(settings: Settings, explicit: Collection[str]) -> tuple[Settings, list[str]]:
    """`settings` with every recorded setting the user did not set explicitly taken from the index in
    settings.store (local: settings.index_dir); also the names of the settings so taken. Without an index,
    `settings` as they are."""
    from .store import store_for

    manifest = store_for(settings).recorded()
    if manifest is None:
        return settings, []
    recorded = {"model": manifest.model, "chunk_tokens": manifest.chunk_tokens,
                "chunk_overlap": manifest.chunk_overlap, "backend": manifest.backend or "torch"}
    folder = manifest.built_from(settings.index_dir)
    if folder is not None:
        recorded["docs_dir"] = folder
    changes = {k: v for k, v in recorded.items()
               if k not in explicit and v != getattr(settings, k) and v not in ("", None)}
    if "docs_dir" in changes and Path(changes["docs_dir"]).resolve() == settings.docs_dir.resolve():
        del changes["docs_dir"]
    return (settings.replace(**changes), sorted(changes)) if changes else (settings, [])
