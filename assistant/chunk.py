"""Structure-aware, token-aware chunking.

A document is cut into sentence units (long sentences into token windows), which are packed greedily into
chunks of about `tokens` tiktoken tokens. Sections start new chunks; a chunk prefers to end at a paragraph
boundary; neighbouring chunks share up to `overlap` tokens of whole sentences. Every chunk is an exact span
of the document text. The text the model embeds is the chunk plus a one-line context header (title and
heading path); it is checked against the model's own tokenizer and re-cut until it fits, so the model
never truncates it.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import tokens as tk
from .records import Chunk, Document
from .sentences import paragraph_spans, sentence_spans

CHUNKER_VERSION = 5  # bumped whenever loading or chunking cut documents differently: indexes rebuild
_CONTEXT_CHARS = 160
_BATCH = 4096  # texts per tokenizer call: bounds the memory a huge document needs

TokenCounter = Callable[[list[str]], list[int]]


@dataclass(frozen=True, slots=True)
class _Unit:
    start: int
    end: int
    ntok: int
    para_start: bool  # first unit of a paragraph
    section_start: bool  # first unit of a section


class _HeadingIndex:
    """`Document.heading_path` for many offsets of one document: built once, O(log n) per look-up."""

    def __init__(self, doc: Document) -> None:
        # heading_path stops at the first section that starts after the offset, so a look-up bisects the
        # running maximum of the section starts (sections are in text order; the maximum keeps this exact
        # even if they were not).
        self._reach: list[int] = []
        self._paths: list[tuple[str, ...]] = []
        path: list[tuple[int, str]] = []
        top = -1
        for s in doc.sections:
            top = max(top, s.start)
            while path and path[-1][0] >= s.level:
                path.pop()
            path.append((s.level, s.title))
            self._reach.append(top)
            self._paths.append(tuple(t for _, t in path))

    def __call__(self, offset: int) -> tuple[str, ...]:
        i = bisect.bisect_right(self._reach, offset)
        return self._paths[i - 1] if i else ()


def _count(counter: TokenCounter, texts: list[str]) -> list[int]:
    out: list[int] = []
    for i in range(0, len(texts), _BATCH):
        out += counter(texts[i:i + _BATCH])
    return out


def context_header(doc: Document, headings: Sequence[str]) -> str:
    """Title and heading path, e.g. 'Programming FAQ > Core Language > Why ...'; short."""
    parts = [doc.title] if doc.title else []
    parts += [h for h in headings if h and h != doc.title]
    header = " > ".join(parts)
    return header if len(header) <= _CONTEXT_CHARS else header[: _CONTEXT_CHARS - 1] + "…"


def embedding_text(doc: Document, chunk: Chunk) -> str:
    """What the embedding model sees for a chunk."""
    header = context_header(doc, chunk.headings)
    return f"{header}\n{chunk.text}" if header else chunk.text


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """text[start:end] without its leading and trailing whitespace; empty (end == start) if it is blank."""
    piece = text[start:end]
    body = piece.strip()
    if not body:
        return start, start
    start += len(piece) - len(piece.lstrip())
    return start, start + len(body)


def _windows(text: str, start: int, end: int, size: int, overlap: int) -> list[tuple[int, int, int]]:
    """Token windows over text[start:end] as (start, end, ntok) character spans, whitespace trimmed: a
    window never starts with the space of its first token, and a window of nothing but whitespace (a
    long run of spaces is many tokens) is left out."""
    enc = tk.encoding()
    toks = enc.encode_ordinary(text[start:end])
    _, offsets = enc.decode_with_offsets(toks)
    step = max(1, size - overlap)
    out = []
    for i in range(0, len(toks), step):
        j = min(len(toks), i + size)
        s, e = _trimmed(text, start + offsets[i], start + offsets[j] if j < len(toks) else end)
        if e > s:
            out.append((s, e, j - i))
        if j == len(toks):
            break
    return out


def _units(doc: Document, size: int, overlap: int) -> list[_Unit]:
    text = doc.text
    cuts = sorted({0, len(text), *(s.start for s in doc.sections if 0 < s.start < len(text))})
    section_starts = {s.start for s in doc.sections}
    paras: list[tuple[int, int, bool]] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        for i, (s, e) in enumerate(paragraph_spans(text, a, b)):
            paras.append((s, e, i == 0 and (a in section_starts or a == 0)))
    sents: list[tuple[int, int, bool, bool]] = []
    for s, e, sec in paras:
        for i, (ss, se) in enumerate(sentence_spans(text, s, e)):
            sents.append((ss, se, i == 0, sec and i == 0))
    # One encode call per sentence: tiktoken's batch call submits each text to a thread pool, which costs
    # more than the encoding of a sentence.
    encode = tk.encoding().encode_ordinary
    counts = [len(encode(text[s:e])) for s, e, _, _ in sents]
    units: list[_Unit] = []
    for (s, e, para, sec), n in zip(sents, counts, strict=True):
        if n <= size:
            units.append(_Unit(s, e, n, para, sec))
            continue
        for i, (ws, we, wn) in enumerate(_windows(text, s, e, size, overlap)):
            units.append(_Unit(ws, we, wn, para and i == 0, sec and i == 0))
    return units


def _pack(units: Sequence[_Unit], size: int, overlap: int) -> list[tuple[int, int]]:
    """Greedy packing of units into (first, last) unit index ranges."""
    groups: list[tuple[int, int]] = []
    i, n = 0, len(units)
    prev_last = -1
    while i < n:
        total, j = 0, i
        while j < n:
            u = units[j]
            if j > i and total + u.ntok > size:
                break
            if j > i and u.section_start and total >= size // 4:
                break  # a new section starts a new chunk, unless this chunk is still tiny
            if j > i and u.para_start and total >= size // 2:
                para_tokens = 0
                k = j
                while k < n and (k == j or not units[k].para_start) and total + para_tokens <= size:
                    para_tokens += units[k].ntok
                    k += 1
                if total + para_tokens > size:
                    break  # the paragraph would not fit: end the chunk at the paragraph boundary
            total += u.ntok
            j += 1
        if j - 1 <= prev_last:
            i = prev_last + 1  # only the overlap fitted: start after the previous chunk instead
            continue
        groups.append((i, j - 1))
        prev_last = j - 1
        if j >= n:
            break
        # Next chunk starts with trailing whole sentences of this one (up to `overlap` tokens),
        # but never repeats a section start and always makes progress.
        back, k = 0, j
        while k - 1 > i and not units[j].section_start and back + units[k - 1].ntok <= overlap:
            k -= 1
            back += units[k].ntok
        i = k
    return groups


def chunk_document(doc: Document, *, tokens: int, overlap: int, max_model_tokens: int | None = None,
                   count_model: TokenCounter | None = None) -> list[Chunk]:
    """Cut `doc` into chunks. With `count_model`, every chunk's embedding text is guaranteed to be at most
    `max_model_tokens` long in the model's tokenizer."""
    units = _units(doc, tokens, overlap)
    headings = _HeadingIndex(doc)
    chunks = _to_chunks(doc, headings, units, _pack(units, tokens, overlap))
    if count_model is not None and max_model_tokens is not None:
        chunks = _fit(doc, headings, chunks, units, tokens, max_model_tokens, count_model)
        # Re-cut neighbours that overlapped (the token windows of one long sentence) interleave: put the
        # pieces back in text order, longest first where they start together.
        chunks.sort(key=lambda c: (c.start, -c.end))
    # Re-cutting overlapping neighbours can leave a piece inside the chunk before it: it adds nothing.
    out: list[Chunk] = []
    for c in chunks:
        if not (out and out[-1].start <= c.start and c.end <= out[-1].end):
            out.append(c)
    return out


def _to_chunks(doc: Document, headings: _HeadingIndex, units: Sequence[_Unit],
               groups: Sequence[tuple[int, int]]) -> list[Chunk]:
    out = []
    for a, b in groups:
        s, e = units[a].start, units[b].end
        out.append(Chunk.make(doc.path, s, e, doc.text[s:e], headings(s), doc.page_at(s)))
    return out


def _fit(doc: Document, headings: _HeadingIndex, chunks: list[Chunk], units: Sequence[_Unit], size: int,
         limit: int, count_model: TokenCounter) -> list[Chunk]:
    """Re-cut every chunk whose embedding text the model would truncate, with a smaller budget."""
    lengths = _count(count_model, [embedding_text(doc, c) for c in chunks])
    if all(n <= limit for n in lengths):
        return chunks
    starts = [u.start for u in units]
    ordered = all(a <= b for a, b in zip(starts, starts[1:], strict=False))  # always, as _units cuts them
    out: list[Chunk] = []
    for c, n in zip(chunks, lengths, strict=True):
        if n <= limit:
            out.append(c)
            continue
        budget = max(8, int(size * limit / n * 0.9))
        if ordered:  # a unit inside the chunk starts in [c.start, c.end)
            lo, hi = bisect.bisect_left(starts, c.start), bisect.bisect_left(starts, c.end)
            inner = [u for u in units[lo:hi] if u.end <= c.end]
        else:
            inner = [u for u in units if u.start >= c.start and u.end <= c.end]
        if budget >= size or len(inner) == 0:
            budget = max(8, size // 2)
        if budget <= 8:
            out.extend(_char_windows(doc, headings, c.start, c.end, limit, count_model))
            continue
        sub_units: list[_Unit] = []
        for u in inner:
            if u.ntok <= budget:
                sub_units.append(u)
            else:
                sub_units += [_Unit(s, e, k, u.para_start and i == 0, u.section_start and i == 0)
                              for i, (s, e, k) in enumerate(_windows(doc.text, u.start, u.end, budget, 0))]
        sub = _to_chunks(doc, headings, sub_units, _pack(sub_units, budget, 0))
        out.extend(_fit(doc, headings, sub, sub_units, budget, limit, count_model))
    return out


def _char_windows(doc: Document, headings: _HeadingIndex, start: int, end: int, limit: int,
                  count_model: TokenCounter, width: int = 200) -> list[Chunk]:
    """Last resort for pathological text: a word piece is never shorter than one character, so windows of
    `width` characters, halved where one still does not fit, end up fitting."""
    spans = [_trimmed(doc.text, s, min(end, s + width)) for s in range(start, end, width)]
    out = [Chunk.make(doc.path, s, e, doc.text[s:e], headings(s), doc.page_at(s)) for s, e in spans if e > s]
    if width == 1:
        return out
    lengths = _count(count_model, [embedding_text(doc, c) for c in out])
    if all(n <= limit for n in lengths):
        return out
    fitted: list[Chunk] = []
    for c, n in zip(out, lengths, strict=True):
        if n <= limit:
            fitted.append(c)
        else:
            fitted += _char_windows(doc, headings, c.start, c.end, limit, count_model, width // 2)
    return fitted
