"""The evaluation question files: they load, their gold quotes are in their gold documents, and the
loader's messages name the file, the line and the field."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from assistant.evaluate.questions import QuestionFileError, check_gold, follow_chain, load_questions

from .conftest import ARTICLES, PGDOCS, PYDOCS, ROOT, require

ARTICLE_QUESTIONS = ROOT / "eval" / "questions.jsonl"
PYDOCS_QUESTIONS = ROOT / "eval" / "pydocs_questions.jsonl"
PGDOCS_QUESTIONS = ROOT / "eval" / "pgdocs_questions.jsonl"


def test_article_questions_cover_the_required_kinds():
    qs = load_questions(ARTICLE_QUESTIONS)
    kinds = Counter(q.kind for q in qs)
    assert kinds["faq"] == 5
    assert len(qs) - kinds["faq"] >= 30
    assert kinds["unanswerable"] >= 8
    assert kinds["paraphrase"] and kinds["multi_doc"] and kinds["fact"]
    assert kinds["follow_up"] and all(q.follows for q in qs if q.kind == "follow_up")
    texts = {q.question for q in qs if not q.answerable}
    assert {"What is TikTok Shop's annual revenue?", "What is the capital of France?"} <= texts
    assert {len(q.gold_sources) for q in qs if q.kind == "multi_doc"} == {2}


def test_article_gold_quotes_are_in_their_documents():
    assert check_gold(load_questions(ARTICLE_QUESTIONS), ARTICLES) == []


def test_faq_gold_includes_the_faq_answer_and_the_body_passage():
    text = (ARTICLES / "tiktok-hires-amazon-and-meta-veterans.txt").read_text(encoding="utf-8")
    faq_start = text.index("1. How will TikTok")
    for q in load_questions(ARTICLE_QUESTIONS):
        if q.kind != "faq":
            continue
        offsets = [text.index(quote) for quote in q.gold_quotes]
        assert any(o >= faq_start for o in offsets), q.id
        assert any(o < faq_start for o in offsets), q.id
        assert q.answer in text[faq_start:], q.id  # the FAQ's own answer is the gold answer


def test_pydocs_questions_and_gold():
    qs = load_questions(PYDOCS_QUESTIONS)
    assert sum(q.answerable for q in qs) >= 30
    assert sum(not q.answerable for q in qs) >= 5
    assert all(s.split("/")[0] in ("faq", "tutorial", "howto") for q in qs for s in q.gold_sources)
    assert check_gold(qs, require(PYDOCS, "python3.11-doc")) == []


def test_pgdocs_questions_and_gold():
    qs = load_questions(PGDOCS_QUESTIONS)
    kinds = Counter(q.kind for q in qs)
    assert sum(q.answerable for q in qs) >= 30 and kinds["unanswerable"] >= 5
    assert kinds["paraphrase"] and kinds["multi_doc"] and kinds["follow_up"]
    assert all(s.endswith(".html") for q in qs for s in q.gold_sources)
    assert check_gold(qs, require(PGDOCS, "postgresql-doc-15")) == []


def test_follow_chain_gives_earlier_turns_oldest_first():
    qs = load_questions(ARTICLE_QUESTIONS)
    by_id = {q.id: q for q in qs}
    assert [q.id for q in follow_chain(qs, by_id["conv-1b"])] == ["conv-1a"]
    assert follow_chain(qs, by_id["conv-1a"]) == []


# --- validation messages ----------------------------------------------------------------------------

GOOD = {"id": "q1", "question": "Who?", "gold_sources": ["a.txt"], "gold_quotes": ["Alpha"], "answer": "A",
        "answerable": True, "kind": "fact"}


def write(tmp_path: Path, *objs: dict | str) -> Path:
    path = tmp_path / "qs.jsonl"
    path.write_text("\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("line2", "message"), [
    ("{not json", "qs.jsonl:2: not valid JSON"),
    ("[1, 2]", "qs.jsonl:2: expected a JSON object"),
    ({**GOOD, "id": "q2", "extra": 1}, "qs.jsonl:2: extra: unknown field"),
    ({k: v for k, v in GOOD.items() if k != "answer"} | {"id": "q2"}, "qs.jsonl:2: answer: missing"),
    ({**GOOD, "id": "q2", "answerable": "yes"}, "qs.jsonl:2: answerable: expected bool, got str"),
    ({**GOOD, "id": "q2", "gold_quotes": []}, "qs.jsonl:2: gold_quotes: an answerable question needs"),
    ({**GOOD, "id": "q2", "answerable": False}, "qs.jsonl:2: gold_sources: must be empty"),
    ({**GOOD, "id": "q2", "gold_sources": ["../a.txt"]}, "qs.jsonl:2: gold_sources: '../a.txt' must be"),
    ({**GOOD, "id": "q1"}, "qs.jsonl:2: id: duplicate id 'q1' (first on line 1)"),
    ({**GOOD, "id": "q2", "follows": "q9"}, "qs.jsonl:2: follows: unknown id 'q9'"),
    ({**GOOD, "id": "q2", "question": " "}, "qs.jsonl:2: question: must not be empty"),
])
def test_invalid_lines_are_reported_with_file_line_and_field(tmp_path: Path, line2, message: str):
    with pytest.raises(QuestionFileError) as e:
        load_questions(write(tmp_path, GOOD, line2))
    assert message in str(e.value)
    assert "\n" not in str(e.value)
    assert e.value.exit_code == 2


def test_follows_must_point_backwards_and_blank_lines_are_skipped(tmp_path: Path):
    later = {**GOOD, "follows": "q2"}
    with pytest.raises(QuestionFileError, match="qs.jsonl:1: follows: unknown id 'q2'"):
        load_questions(write(tmp_path, later, {**GOOD, "id": "q2"}))
    qs = load_questions(write(tmp_path, GOOD, "", {**GOOD, "id": "q2", "follows": "q1"}))
    assert [(q.id, q.line, q.follows) for q in qs] == [("q1", 1, None), ("q2", 3, "q1")]


def test_missing_and_empty_files(tmp_path: Path):
    with pytest.raises(QuestionFileError, match="question file not found"):
        load_questions(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(QuestionFileError, match="no questions"):
        load_questions(tmp_path / "empty.jsonl")


def test_check_gold_reports_missing_files_quotes_and_sources(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Alpha beta.", encoding="utf-8")
    (docs / "b.txt").write_text("Gamma.", encoding="utf-8")
    qs = load_questions(write(
        tmp_path, GOOD,
        {**GOOD, "id": "q2", "gold_quotes": ["Alpha", "Zeta"]},
        {**GOOD, "id": "q3", "gold_sources": ["a.txt", "b.txt"]},
        {**GOOD, "id": "q4", "gold_sources": ["c.txt"]}))
    problems = check_gold(qs, docs)
    assert problems == [
        "q2 (line 2): gold quote not found in a.txt: 'Zeta'",
        "q3 (line 3): gold source 'b.txt' contains none of the gold quotes",
        f"q4 (line 4): gold source 'c.txt' not found or unreadable in {docs}",
        "q4 (line 4): gold quote not found in c.txt: 'Alpha'",
    ]


def test_check_gold_looks_in_the_loaded_text_of_html(tmp_path: Path):
    """Gold quotes are matched like gold evidence: in the text as loaded, any whitespace for any other."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.html").write_text("<html><body><p>Alpha <b>beta</b>\n   gamma &amp; delta.</p>"
                                 "<script>var hidden = 1;</script></body></html>", encoding="utf-8")
    qs = load_questions(write(
        tmp_path,
        {**GOOD, "gold_sources": ["a.html"], "gold_quotes": ["Alpha beta gamma & delta."]},
        {**GOOD, "id": "q2", "gold_sources": ["a.html"], "gold_quotes": ["var hidden"]}))
    assert check_gold(qs, docs) == [
        "q2 (line 2): gold quote not found in a.html: 'var hidden'",
        "q2 (line 2): gold source 'a.html' contains none of the gold quotes",
    ]
