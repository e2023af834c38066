"""What a build did: the BuildReport every update returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..load import Skipped


@dataclass(frozen=True)
class BuildReport:
    index_dir: Path
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    chunks: int = 0  # in the index after the build
    embedded: int = 0  # chunks embedded by this build
    seconds: float = 0.0
    rebuilt: bool = False
    reason: str = ""  # why everything was rebuilt
    pending: int = 0  # chunks still without a dense vector (searchable lexically; fill_vectors adds them)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def wrote(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.rebuilt)

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.changed)} changed", f"{len(self.unchanged)} unchanged",
                 f"{len(self.removed)} removed", f"{len(self.skipped)} skipped"]
        waiting = f", {self.pending} waiting for vectors" if self.pending else ""
        line = f"documents: {', '.join(parts)}; chunks: {self.chunks} ({self.embedded} embedded{waiting}); " \
               f"{self.seconds:.2f} s"
        return f"rebuilt everything ({self.reason}); {line}" if self.rebuilt else line
