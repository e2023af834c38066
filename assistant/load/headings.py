"""Headings of plain-text formats (Markdown, reStructuredText, plain text) as Sections with exact offsets."""

from __future__ import annotations

import re

from ..records import Section

_CLOSERS = "\"'”’»)]"


def _lines(text: str) -> list[tuple[int, str]]:
    """(offset, line without its line break and trailing whitespace) for every line of `text`."""
    out: list[tuple[int, str]] = []
    pos = 0
    for line in text.splitlines(keepends=True):
        out.append((pos, line.rstrip()))
        pos += len(line)
    return out


def _indent(s: str) -> int:
    return len(s) - len(s.lstrip())


# --- Markdown -------------------------------------------------------------------------------------------

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+|$)")
_SETEXT = re.compile(r" {0,3}(=+|-+)$")
_LIST_ITEM = re.compile(r"\s*(?:[-*+>|]|\d+[.)])(?:\s|$)")


def markdown_sections(text: str) -> tuple[Section, ...]:
    """ATX (`## Title`) and setext (`Title` over `===` / `---`) headings, outside code fences and
    YAML front matter."""
    lines = _lines(text)
    sections: list[Section] = []
    fence = ""
    i = _front_matter_end(lines)
    prev_blank = True
    while i < len(lines):
        off, s = lines[i]
        m = _FENCE.match(s)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not s[m.end():].strip():
                fence = ""
            i += 1
            continue
        if m:
            fence = m.group(1)
            i += 1
            continue
        if not s.strip():
            prev_blank = True
            i += 1
            continue
        m = _ATX.match(s)
        if m:
            body = _atx_unclose(s[m.end():]).strip()
            if body:
                sections.append(Section(off + s.index(body, m.end()), len(m.group(1)), body))
            prev_blank = True
            i += 1
            continue
        if (prev_blank and i + 1 < len(lines) and _indent(s) < 4 and not _LIST_ITEM.match(s)
                and (u := _SETEXT.match(lines[i + 1][1]))):
            sections.append(Section(off + _indent(s), 1 if u.group(1)[0] == "=" else 2, s.strip()))
            prev_blank = True
            i += 2
            continue
        prev_blank = False
        i += 1
    return tuple(sections)


def _atx_unclose(s: str) -> str:
    """`s` without a closing sequence of #s ("Title ##"), which must follow a space or tab unless it is all
    of `s`. The regular expression r"(?:^|[ \t]+)#+$" says the same in time quadratic in a line's spaces."""
    body = s.rstrip("#")
    if body == s:
        return s
    if not body:
        return ""
    return body.rstrip(" \t") if body[-1] in " \t" else s


def _front_matter_end(lines: list[tuple[int, str]]) -> int:
    if not lines or lines[0][1] != "---":
        return 0
    for j in range(1, min(len(lines), 200)):
        if lines[j][1] in ("---", "..."):
            return j + 1
    return 0


# --- reStructuredText -----------------------------------------------------------------------------------

_ADORNMENT = re.compile(r"([!-/:-@\[-`{-~])\1*")  # one punctuation character, repeated, from column 0


def _is_adornment(s: str) -> bool:
    return _ADORNMENT.fullmatch(s) is not None


def _long_enough(adornment: str, title: str) -> bool:
    # docutils accepts a short underline (with a warning) once it is at least 4 characters long.
    return len(adornment) >= len(title) or len(adornment) >= 4


def rst_sections(text: str) -> tuple[Section, ...]:
    """Underlined and over-and-underlined section titles. As in docutils, each adornment style (character,
    with or without overline) gets the next level the first time it is seen. Literal blocks, directive
    bodies and tables are indented or have inner spaces, so they never match."""
    lines = _lines(text)
    styles: list[tuple[str, bool]] = []
    sections: list[Section] = []

    def add(off: int, raw: str, style: tuple[str, bool]) -> None:
        if style not in styles:
            styles.append(style)
        title = raw.strip()
        sections.append(Section(off + _indent(raw), styles.index(style) + 1, title))

    i = 0
    n = len(lines)
    while i < n:
        off, s = lines[i]
        prev_blank = i == 0 or not lines[i - 1][1].strip()
        if prev_blank and s and i + 1 < n:
            nxt = lines[i + 1][1]
            if _is_adornment(s):
                if (i + 2 < n and nxt.strip() and not _is_adornment(nxt.strip())
                        and lines[i + 2][1][:1] == s[0] and _is_adornment(lines[i + 2][1])
                        and _long_enough(s, nxt.strip())):
                    add(lines[i + 1][0], nxt, (s[0], True))
                    i += 3
                    continue
            elif not s[0].isspace() and _is_adornment(nxt) and _long_enough(nxt, s):
                add(off, s, (nxt[0], False))
                i += 2
                continue
        i += 1
    return tuple(sections)


# --- plain text -----------------------------------------------------------------------------------------

_NUMBERED = re.compile(r"(?:\d{1,3}(?:\.\d{1,3})*[.)]?|[IVXLC]{1,6}\.)\s+(?=\S)")
_SMALL_WORDS = frozenset(("a", "an", "and", "as", "at", "but", "by", "for", "from", "in", "into", "nor", "of",
                          "on", "or", "per", "the", "to", "vs", "via", "with"))
_NOT_A_START = tuple("-*•+>|#=~_/\\[{(<")


def plain_sections(text: str) -> tuple[Section, ...]:
    """Headings of a plain .txt: underlined titles if the file uses them, else short, title-like lines that
    stand alone between blank lines. Such a line opening the document is level 1, the others level 2;
    numbered ones ("1. The Amazon Connection") go one level below an unnumbered heading before them."""
    underlined = rst_sections(text)
    if underlined:
        return underlined
    lines = _lines(text)
    blocks = 0
    candidates: list[tuple[int, str, bool, bool]] = []  # (offset, title, numbered, opens the document)
    for i, (off, s) in enumerate(lines):
        if not s.strip():
            continue
        prev_blank = i == 0 or not lines[i - 1][1].strip()
        blocks += prev_blank
        next_blank = i + 1 < len(lines) and not lines[i + 1][1].strip()
        if prev_blank and next_blank and _title_like(s.strip()):
            candidates.append((off + _indent(s), s.strip(), bool(_NUMBERED.match(s.strip())), blocks == 1))
    # A text where most blocks are short lines (a list, a poem, an address book) has no headings.
    if not candidates or len(candidates) * 3 > blocks * 2:
        return ()
    sections: list[Section] = []
    seen_plain = False
    for off, title, numbered, first in candidates:
        if first:
            level = 1
        elif numbered:
            level = 3 if seen_plain else 2
        else:
            level = 2
            seen_plain = True
        sections.append(Section(off, level, title))
    return tuple(sections)


def _title_like(s: str) -> bool:
    if len(s) >= 80 or s.startswith(_NOT_A_START) or "://" in s:
        return False
    if s.rstrip(_CLOSERS)[-1:] in tuple(".!?,;:…"):
        return False
    m = _NUMBERED.match(s)
    words = s[m.end():].split() if m else s.split()
    if not words or len(words) > 12 or not any(c.isalpha() for c in words[0]):
        return False
    first_letter = next(c for c in words[0] if c.isalpha())
    if not first_letter.isupper():
        return False
    content = [w for w in words[1:] if any(c.isalpha() for c in w) and w.lower() not in _SMALL_WORDS]
    capitalised = sum(1 for w in content if any(c.isupper() for c in w))
    return len(words) <= 3 or capitalised * 2 >= len(content)


_ADOC_HEADING = re.compile(r"(={1,6}|#{1,6})[ \t]+(\S.*?)(?:[ \t]+\1)?[ \t]*$")
_ADOC_DELIMITER = re.compile(r"(-{4,}|\.{4,}|={4,}|\*{4,}|_{4,}|\+{4,}|/{4,}|`{3,})[ \t]*$")


def asciidoc_sections(text: str) -> tuple[Section, ...]:
    """AsciiDoc section titles: "= Title" (level 1) to "====== Level 6" at the start of a line, outside
    delimited blocks (listings, literals, examples, comments...)."""
    found: list[Section] = []
    delimiter = ""
    for start, line in _lines(text):
        m = _ADOC_DELIMITER.match(line)
        if m:
            delimiter = "" if delimiter == m.group(1) else (delimiter or m.group(1))
            continue
        if delimiter:
            continue
        h = _ADOC_HEADING.match(line)
        if h:
            found.append(Section(start, len(h.group(1)), h.group(2).strip()))
    return tuple(found)
