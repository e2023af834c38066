"""HTML pages: the main text only, as readable plain text, with h1-h6 as Sections.

The terms of definition lists (`<dt>`: a configuration parameter, a command-line option, an API signature,
a glossary entry) are Sections too, one level below the heading they stand under, so each entry gets its
own heading path and chunks. The titles of admonitions ("Note", "Tip") are not: the text after a note
still belongs to the section around it."""

from __future__ import annotations

import codecs
import re
from typing import Any

from ..errors import DocumentError
from ..records import Document, Section
from .text import clip, decode_text, pick_title

# Never text: dropped with their content wherever they are.
_DROP_TAGS = ("script", "style", "noscript", "template", "svg", "math", "nav", "aside", "form", "iframe",
              "button", "select", "textarea", "object", "embed", "canvas", "dialog", "footer")
# Page-level banners; a <header> inside an article, main or section holds that part's own title, and stays.
_BANNERS = ("header",)
_SECTIONING = frozenset(("article", "main", "section"))
_NAV_MARKERS = frozenset((
    "nav", "navbar", "navheader", "navfooter", "navigation", "menu", "menu-wrapper", "mobile-nav", "sidebar",
    "sphinxsidebar", "sphinxsidebarwrapper", "related", "breadcrumb", "breadcrumbs", "headerlink",
    "skip-link", "skiplink", "footer", "site-header", "site-footer", "toc-drawer", "inline-search",
    "searchbox", "language_switcher_placeholder", "version_switcher_placeholder", "cookie-banner",
))
_NAV_ROLES = frozenset(("navigation", "banner", "contentinfo", "search", "complementary"))

_PARAGRAPH = frozenset(("p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "table", "ul", "ol",
                        "dl", "figure", "hr", "address", "details", "fieldset", "section", "article", "main"))
_LINE = frozenset(("div", "li", "tr", "dt", "dd", "br", "caption", "figcaption", "summary", "legend",
                   "thead", "tbody", "tfoot", "center", "header", "body", "option"))
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_ADMONITIONS = frozenset(("note", "tip", "warning", "caution", "important", "admonition", "seealso",
                          "hint", "attention", "danger", "error"))
_CELLS = ("td", "th")

_DECLARED = re.compile(
    rb"""<\?xml[^>]*encoding\s*=\s*["']([\w.:-]+)|<meta[^>]*charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")  # what lxml's setters refuse
_WINDOWS_1252_ALIASES = frozenset(("latin_1", "iso8859_1", "ascii", "cp1252"))  # as browsers read them


def load_html(rel: str, data: bytes, sha256: str) -> Document:
    """Parse an HTML page into readable text: navigation and scripts dropped, blocks on their own lines."""
    source = _XML_DECL.sub("", _decode(data), count=1)
    if not source.strip():
        raise DocumentError(rel, "no text")
    # A page's table of contents is navigation; a page that is nothing but one (a chapter's front page)
    # keeps it, so that it is still indexed.
    title, text, sections = _parse(rel, source, drop_toc=True)
    if not text:
        title, text, sections = _parse(rel, source, drop_toc=False)
    if not title:
        title = next((s.title for s in sections if s.level == 1), "") or pick_title(text, sections, rel)
    return Document(path=rel, text=text, sha256=sha256, title=title, sections=sections)


def _parse(rel: str, source: str, drop_toc: bool) -> tuple[str, str, tuple[Section, ...]]:
    """The page's <title>, and the text and sections of its most specific container that has text."""
    import lxml.html
    from lxml import etree

    parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True)
    try:
        root = lxml.html.document_fromstring(source, parser=parser)
    except (etree.ParserError, ValueError) as e:
        raise DocumentError(rel, f"not parseable as HTML ({_one_line(e)})") from e
    head = root.find("head")
    title = clip((head.findtext("title") if head is not None else None) or "")  # not an <svg>'s <title>
    _strip(root, drop_toc)
    for container in _containers(root):
        text, sections = _render(container)
        if text:
            return title, text, sections
    return title, "", ()


def _decode(data: bytes) -> str:
    if not data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        m = _DECLARED.search(data, 0, 4096)
        if m:
            name = (m.group(1) or m.group(2)).decode("ascii")
            try:
                codec = codecs.lookup(name).name.replace("-", "_")
            except LookupError:
                codec = ""
            if codec in _WINDOWS_1252_ALIASES:
                codec = "cp1252"
            if codec and not codec.startswith("utf_16"):  # a page that really is UTF-16 has a BOM
                try:
                    return data.decode(codec)
                except UnicodeDecodeError:
                    pass  # the declaration is wrong; guess instead
    return decode_text(data)


def _strip(root: Any, drop_toc: bool = True) -> None:
    """Remove everything that is not content: scripts, styles, navigation, page banners, and (when
    `drop_toc`) tables of contents."""
    doomed = list(root.iter(*_DROP_TAGS))
    doomed += [el for el in root.iter(*_BANNERS)
               if not any(a.tag in _SECTIONING for a in el.iterancestors())]
    for el in root.xpath("//*[@class or @id or @role or @hidden or @aria-hidden]"):
        marks = el.get("class", "").lower().split()
        ident = el.get("id")
        if ident:
            marks.append(ident.lower())
        if (_NAV_MARKERS.intersection(marks) or (drop_toc and "toc" in marks)
                or el.get("role", "").lower() in _NAV_ROLES
                or el.get("hidden") is not None or el.get("aria-hidden", "").lower() == "true"):
            doomed.append(el)
    for el in doomed:
        if el.getparent() is not None:
            _drop(el)


def _drop(el: Any) -> None:
    """Remove `el` and its content, keeping its tail text, which belongs to its parent."""
    if el.tail:
        previous = el.getprevious()
        before = (el.getparent().text if previous is None else previous.tail) or ""
        if _NOT_XML.search(before) or _NOT_XML.search(el.tail):
            # drop_tree would move the tail onto the text before it, and lxml refuses to set text holding a
            # control character ("\x0c"), after deleting the old text: empty the element instead.
            el.clear(keep_tail=True)
            el.tag = "span"
            return
    el.drop_tree()


def _containers(root: Any) -> list[Any]:
    """Where the main text is, most specific first; the whole body last."""
    found: list[Any] = []
    for path in ("//main", "//*[@role='main']", "//article",
                 "//div[contains(concat(' ', normalize-space(@class), ' '), ' body ')]",
                 "//div[contains(concat(' ', normalize-space(@class), ' '), ' document ')]"):
        hits = root.xpath(path)
        if len(hits) == 1 or (hits and path != "//article"):  # several articles: a listing, not one story
            found.append(hits[0])
    body = root.find("body")
    found.append(body if body is not None else root)
    return found


class _Writer:
    """Accumulates text with collapsed inline whitespace and at most one blank line between blocks."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.n = 0
        self.brk = 0  # newlines owed before the next text
        self.space = False  # a space owed before the next text
        self.sep = ""  # a table-cell separator owed before the next text
        self.mark: int | None = None  # index in parts where the current heading's text starts
        self.mark_at = 0  # its offset in the text
        self.prefix = ""  # a list bullet owed before the next text
        self.cells = 0  # depth of open table cells, where blocks only separate words

    def _emit(self, s: str) -> None:
        self.parts.append(s)
        self.n += len(s)

    def _lead(self) -> None:
        if self.n:
            if self.brk:
                self._emit("\n" * self.brk)
            elif self.sep:
                self._emit(self.sep)
            elif self.space:
                self._emit(" ")
        self.brk, self.space, self.sep = 0, False, ""
        if self.prefix:
            self._emit(self.prefix)
            self.prefix = ""

    def inline(self, s: str | None) -> None:
        if not s:
            return
        words = s.split()
        if not words:
            self.space = True
            return
        if s[0].isspace():
            self.space = True
        self._lead()
        if self.mark == -1:
            self.mark, self.mark_at = len(self.parts), self.n
        self._emit(" ".join(words))
        self.space = s[-1].isspace()

    def verbatim(self, s: str) -> None:
        self._lead()
        self._emit(s)

    def block(self, newlines: int) -> None:
        if self.cells:
            self.space = True  # <p> or <div> in a table cell: the row stays on one line
            return
        if self.prefix:
            return  # "<li><p>text": the bullet and the text stay on one line
        self.brk = max(self.brk, min(newlines, 2))
        self.space = False
        self.sep = ""

    def line_break(self) -> None:
        """<br>: one more newline, so that <br><br> leaves a blank line."""
        if self.cells or self.prefix:
            self.space = True
        else:
            self.brk = min(self.brk + 1, 2) if self.n else 0
            self.space = False
            self.sep = ""

    def bullet(self, prefix: str) -> None:
        self.block(1)
        self.prefix = prefix


def _render(container: Any) -> tuple[str, tuple[Section, ...]]:
    from lxml import etree

    w = _Writer()
    sections: list[Section] = []
    heading: int | None = None  # level of the open heading (or definition term)
    level = 0  # level of the last heading: definition terms go one level below it
    pre: list[str] | None = None
    pre_depth = 0
    numbers: dict[Any, dict[Any, int]] = {}  # <ol> -> its <li> children -> their position
    for event, el in etree.iterwalk(container, events=("start", "end")):
        tag = el.tag
        if not isinstance(tag, str):
            continue
        if pre is not None:  # inside <pre>: everything verbatim
            if event == "start":
                if tag == "pre":
                    pre_depth += 1
                elif tag == "br":
                    pre.append("\n")
                pre.append(el.text or "")
            else:
                if tag == "pre":
                    pre_depth -= 1
                    if pre_depth == 0:
                        body = "".join(pre)
                        body = body[1:] if body.startswith("\n") else body  # as browsers do
                        body = body.rstrip()
                        if body.strip():
                            w.verbatim(body)
                        pre = None
                        w.block(2)
                        w.inline(el.tail)
                        continue
                pre.append(el.tail or "")
            continue
        if event == "start":
            if tag == "pre":
                w.block(2)
                pre, pre_depth = [el.text or ""], 1
                continue
            if tag in _CELLS:
                if w.parts and not w.brk and el.getprevious() is not None:
                    w.sep = " | "
                w.cells += 1
            elif tag in _HEADINGS:
                w.block(2)
                if not _in_admonition(el):
                    heading, w.mark = _HEADINGS[tag], -1
            elif tag == "dt" and heading is None and _is_term(el):
                w.block(1)
                term_depth = sum(1 for a in el.iterancestors("dl"))
                heading, w.mark = min(6, level + term_depth), -1
            elif tag == "li":
                w.bullet(_bullet(el, numbers))
            elif tag == "br":
                w.line_break()
            elif tag in _PARAGRAPH:
                parent = el.getparent()
                nested = tag in ("ul", "ol", "dl") and parent is not None and parent.tag in ("li", "dd")
                w.block(1 if nested else 2)
            elif tag in _LINE:
                w.block(1)
            w.inline(el.text)
        else:
            if tag in _CELLS:
                w.cells -= 1
            elif (tag in _HEADINGS or tag == "dt") and heading is not None and w.mark is not None:
                if w.mark >= 0:
                    start = w.mark_at
                    title = " ".join("".join(w.parts[w.mark:]).split())
                    if title:
                        sections.append(Section(start, heading, title))
                        if tag in _HEADINGS:
                            level = heading
                heading, w.mark = None, None
                w.block(2 if tag in _HEADINGS else 1)
            elif tag in _PARAGRAPH:
                parent = el.getparent()
                # "<li><p>item</p></li>": items of a list stay on consecutive lines
                tight = parent is not None and parent.tag == "li" and el.getnext() is None
                w.block(1 if tight else 2)
            elif tag in _LINE and tag != "br":
                w.block(1)
            if el is not container:
                w.inline(el.tail)
    return "".join(w.parts), tuple(sections)


def _classes(el: Any) -> set[str]:
    return set(el.get("class", "").lower().split())


def _in_admonition(heading: Any) -> bool:
    """A heading that only titles a note, tip or warning box (DocBook's <div class="note"><h3>)."""
    parent = heading.getparent()
    return parent is not None and parent.tag in ("div", "aside", "section") and bool(
        _classes(parent) & _ADMONITIONS)


def _is_term(dt: Any) -> bool:
    """A definition-list term, not an entry of a table of contents (a term that is nothing but a link)."""
    if any("toc" in _classes(a) for a in dt.iterancestors("div", "dl")):
        return False
    text = " ".join(dt.text_content().split())
    links = " ".join(" ".join(a.text_content() for a in dt.iter("a")).split())
    return bool(text) and text != links


def _bullet(li: Any, numbers: dict[Any, dict[Any, int]]) -> str:
    """"- " for an unordered item, "3. " for the third of an ordered list, so sentence splitting sees
    list items. `numbers` caches each list's items, so that a long list costs linear time (it holds the
    elements, so lxml hands out the same proxy objects for them)."""
    parent = li.getparent()
    if parent is None or parent.tag != "ol":
        return "- "
    try:
        first = int(parent.get("start", "1"))
    except ValueError:
        first = 1
    items = numbers.get(parent)
    if items is None:
        items = numbers[parent] = {}
        for child in parent:
            if child.tag == "li":
                items[child] = len(items)
    return f"{first + items[li]}. "


def _one_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]
