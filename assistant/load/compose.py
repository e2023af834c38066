"""Building a loaded text from parts (paragraphs, table rows, cells, chapters) while recording where each
heading starts, so every offset into the result is exact by construction."""

from __future__ import annotations

import zipfile

from ..errors import DocumentError
from ..records import Section

MAX_UNZIPPED_MB = 200  # an Office file or EPUB that inflates to more is refused (a zip bomb)
MAX_MEMBERS = 20_000


class TextBuilder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.sections: list[Section] = []
        self.pages: list[int] = []

    def block(self, text: str, separator: str = "\n\n") -> int:
        """Append a block (after `separator` unless it is the first); its start offset."""
        text = text.strip("\n")
        if not text.strip():
            return self.length
        if self.parts:
            self.parts.append(separator)
            self.length += len(separator)
        start = self.length
        self.parts.append(text)
        self.length += len(text)
        return start

    def heading(self, title: str, level: int) -> None:
        title = " ".join(title.split())
        if title:
            self.sections.append(Section(self.block(title), level, title))

    def page(self) -> None:
        """The next block starts a new page (a slide)."""
        self.pages.append(self.length + (2 if self.parts else 0))

    def text(self) -> str:
        return "".join(self.parts)


def open_zip(rel: str, data: bytes, what: str) -> zipfile.ZipFile:
    """A zip container (docx, pptx, epub), checked against bombs before anything is inflated."""
    import io

    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise DocumentError(rel, f"not a valid {what} file ({e})") from None
    infos = z.infolist()
    if len(infos) > MAX_MEMBERS:
        raise DocumentError(rel, f"{len(infos):,} parts inside, over the {MAX_MEMBERS:,} limit")
    total = sum(i.file_size for i in infos)
    if total > MAX_UNZIPPED_MB * 1024 * 1024:
        raise DocumentError(rel, f"inflates to {total / 1024 / 1024:.0f} MB, over the {MAX_UNZIPPED_MB} MB limit")
    return z
