"""The evaluation question files: one JSON object per line, validated strictly so a typo fails loudly
with the file, the line and the field instead of silently skewing the scores."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import AssistantError

KINDS = ("faq", "fact", "paraphrase", "multi_doc", "follow_up", "unanswerable")
_REQUIRED = {"id": str, "question": str, "gold_sources": list, "gold_quotes": list, "answer": str,
             "answerable": bool, "kind": str}
_OPTIONAL = {"follows": str, "draft": str, "cited_quotes": list, "comment": str}


class QuestionFileError(AssistantError):
    """A question file is missing, is not valid JSONL, or breaks the format."""

    exit_code = 2


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    gold_sources: tuple[str, ...]  # POSIX paths relative to the documents folder
    gold_quotes: tuple[str, ...]  # exact substrings of a gold document; any one counts
    answer: str
    answerable: bool
    kind: str  # one of KINDS, or any other label
    follows: str | None = None  # id of the earlier question this one continues
    line: int = 0  # 1-based line in the file, for messages


def load_questions(path: Path) -> list[Question]:
    """Read and validate a question file. Blank lines are skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise QuestionFileError(f"{path}: question file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise QuestionFileError(f"{path}: cannot read: {e}") from None
    questions: list[Question] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        q = _parse(raw, f"{path}:{n}", n)
        if q.id in seen:
            raise QuestionFileError(f"{path}:{n}: id: duplicate id {q.id!r} (first on line {seen[q.id]})")
        if q.follows is not None and q.follows not in seen:
            raise QuestionFileError(
                f"{path}:{n}: follows: unknown id {q.follows!r} (it must be an earlier question)")
        seen[q.id] = n
        questions.append(q)
    if not questions:
        raise QuestionFileError(f"{path}: no questions")
    return questions


def _parse(raw: str, where: str, line: int) -> Question:
    try:
        obj: Any = json.loads(raw)
    except json.JSONDecodeError as e:
        raise QuestionFileError(f"{where}: not valid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(obj, dict):
        raise QuestionFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")

    def fail(name: str, why: str) -> QuestionFileError:
        return QuestionFileError(f"{where}: {name}: {why}")

    if "draft" in obj:  # written by `assistant eval --export-feedback`, not yet checked by a person
        raise QuestionFileError(f"{where}: draft: {obj['draft']}")
    for name in obj:
        if name not in _REQUIRED and name not in _OPTIONAL:
            raise fail(name, f"unknown field; known: {', '.join([*_REQUIRED, *_OPTIONAL])}")
    for name in _REQUIRED:
        if name not in obj:
            raise fail(name, "missing")
    for name, typ in {**_REQUIRED, **_OPTIONAL}.items():
        if name in obj and not isinstance(obj[name], typ):
            raise fail(name, f"expected {typ.__name__}, got {type(obj[name]).__name__}")
    for name in ("id", "question", "kind"):
        if not obj[name].strip():
            raise fail(name, "must not be empty")
    for name in ("gold_sources", "gold_quotes"):
        for item in obj[name]:
            if not isinstance(item, str) or not item.strip():
                raise fail(name, f"expected non-empty strings, got {item!r}")
    for src in obj["gold_sources"]:
        p = PurePosixPath(src)
        if p.is_absolute() or ".." in p.parts or "\\" in src:
            raise fail("gold_sources", f"{src!r} must be a POSIX path relative to the documents folder")
    if len(set(obj["gold_sources"])) != len(obj["gold_sources"]):
        raise fail("gold_sources", "duplicate path")
    if obj["answerable"]:
        if not obj["gold_sources"]:
            raise fail("gold_sources", "an answerable question needs at least one gold source")
        if not obj["gold_quotes"]:
            raise fail("gold_quotes", "an answerable question needs at least one gold quote")
        if not obj["answer"].strip():
            raise fail("answer", "an answerable question needs a gold answer")
    else:
        if obj["gold_sources"] or obj["gold_quotes"]:
            raise fail("gold_sources" if obj["gold_sources"] else "gold_quotes",
                       "must be empty for an unanswerable question")
    if obj.get("follows") == obj["id"]:
        raise fail("follows", "a question cannot follow itself")
    return Question(
        id=obj["id"], question=obj["question"], gold_sources=tuple(obj["gold_sources"]),
        gold_quotes=tuple(obj["gold_quotes"]), answer=obj["answer"], answerable=obj["answerable"],
        kind=obj["kind"], follows=obj.get("follows"), line=line)


def check_gold(questions: list[Question], docs_dir: Path) -> list[str]:
    """Problems with the gold data, one line each; empty when every gold source loads, every gold quote
    occurs in one of its question's gold sources, and every gold source holds at least one of the quotes.
    Quotes are looked up in the text as loaded (HTML without markup, PDF text) with any run of whitespace
    matching any other, exactly as the metrics find gold evidence; for plain-text formats that is the file."""
    from ..errors import DocumentError
    from ..load import SourceFile, load_file
    from .metrics import locate

    docs_dir = Path(docs_dir)
    cache: dict[str, str | None] = {}

    def text(src: str) -> str | None:
        if src not in cache:
            path = docs_dir / src
            try:
                cache[src] = load_file(SourceFile(path, src, "", 0)).text if path.is_file() else None
            except DocumentError:
                cache[src] = None
        return cache[src]

    def holds(t: str | None, quote: str) -> bool:
        return t is not None and bool(locate(quote, t))

    problems: list[str] = []
    for q in questions:
        where = f"{q.id} (line {q.line})"
        texts = {s: text(s) for s in q.gold_sources}
        for src, t in texts.items():
            if t is None:
                problems.append(f"{where}: gold source {src!r} not found or unreadable in {docs_dir}")
        for quote in q.gold_quotes:
            if not any(holds(t, quote) for t in texts.values()):
                problems.append(f"{where}: gold quote not found in {', '.join(q.gold_sources)}: {quote!r}")
        for src, t in texts.items():
            if t is not None and not any(holds(t, quote) for quote in q.gold_quotes):
                problems.append(f"{where}: gold source {src!r} contains none of the gold quotes")
    return problems


def follow_chain(questions: list[Question], q: Question) -> list[Question]:
    """The earlier questions `q` continues, oldest first (empty for a first turn)."""
    by_id = {x.id: x for x in questions}
    chain: list[Question] = []
    cur = q
    while cur.follows is not None:
        cur = by_id[cur.follows]
        chain.append(cur)
    return chain[::-1]
