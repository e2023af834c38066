"""The evaluation runner, report and `assistant eval` against a small fake pipeline (the real pipeline is
exercised by the evaluation gate)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from assistant.errors import ConfigError
from assistant.evaluate import runner
from assistant.evaluate.cli import parse_overrides
from assistant.evaluate.questions import QuestionFileError
from assistant.evaluate.report import format_markdown, format_table, write_report
from assistant.evaluate.runner import index_dir_for, run_eval
from assistant.records import Answer, Citation, Hit, Turn
from assistant.settings import Settings

DOCS = {
    "cats.txt": "Cats sleep most of the day. A cat purrs when content.",
    "dogs.txt": "Dogs bark at strangers. A dog wags its tail when happy.",
}
STOP = {"a", "the", "of", "do", "does", "what", "when", "its", "and", "at", "most", "it", "they"}


def words(text: str) -> set[str]:
    return {w.rstrip("s") for w in re.findall(r"[a-z]+", text.lower())} - STOP


class FakePipeline:
    """Sentence-level word-overlap retrieval; answers quote the best sentence, or abstain."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.asked: list[tuple[str, tuple[Turn, ...], int | None]] = []
        self.passages = [(src, mt.start(), mt.end()) for src, text in DOCS.items()
                         for mt in re.finditer(r"[^.]+\.", text)]
        self.passages = [(s, a + (DOCS[s][a] == " "), b) for s, a, b in self.passages]

    def search(self, query: str, k: int | None = None, context: str = "") -> list[Hit]:
        q = words(f"{context} {query}")
        scored = sorted(((len(q & words(DOCS[s][a:b])), s, a, b) for s, a, b in self.passages),
                        key=lambda t: (-t[0], t[1], t[2]))
        return [Hit(rank=i, score=float(sc), source=s, start=a, end=b, text=DOCS[s][a:b])
                for i, (sc, s, a, b) in enumerate(scored[: k or self.settings.k], start=1)]

    def ask(self, question: str, history: Sequence[Turn] = (), k: int | None = None,
            mode: str | None = None) -> Answer:
        self.asked.append((question, tuple(history), k))
        hits = self.search(question, k, context=history[-1].question if history else "")
        if not hits or hits[0].score == 0:
            return Answer(question, "I could not find this in the documents.", (), True, tuple(hits))
        h = hits[0]
        return Answer(question, f"{h.text} [1]", (Citation(1, h.source, h.start, h.end, h.text),), False,
                      tuple(hits))

    def document_text(self, source: str) -> str:
        return DOCS[source]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    for name, text in DOCS.items():
        (d / name).write_text(text, encoding="utf-8")
    return d


def q(id: str, question: str, sources: list[str], quotes: list[str], answer: str, kind: str = "fact",
      **extra: object) -> dict:
    return {"id": id, "question": question, "gold_sources": sources, "gold_quotes": quotes, "answer": answer,
            "answerable": bool(sources), "kind": kind, **extra}


@pytest.fixture
def questions(tmp_path: Path) -> Path:
    rows = [
        q("purr", "When does a cat purr?", ["cats.txt"], ["A cat purrs when content."], "when content"),
        q("bark", "Who do dogs bark at?", ["dogs.txt"], ["Dogs bark at strangers."], "strangers"),
        q("tail", "What about the tail?", ["dogs.txt"], ["A dog wags its tail when happy."], "when happy",
          kind="follow_up", follows="bark"),
        q("both", "Which pets sleep or wag?", ["cats.txt", "dogs.txt"],
          ["Cats sleep most of the day.", "A dog wags its tail when happy."], "cats sleep, dogs wag",
          kind="multi_doc"),
        q("france", "Capital of France?", [], [], "", kind="unanswerable"),
        q("dog-nap", "Do dogs sleep all day?", [], [], "", kind="unanswerable"),
    ]
    path = tmp_path / "qs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def fake_opener(opened: list[FakePipeline]):
    def open_(s: Settings) -> FakePipeline:
        opened.append(FakePipeline(s))
        return opened[-1]
    return open_


def test_run_eval_scores_every_question(docs: Path, questions: Path, tmp_path: Path):
    s = Settings.load(env={}, docs_dir=docs, index_dir=tmp_path / "index", k=2)
    opened: list[FakePipeline] = []
    res = run_eval(s, questions, out_dir=tmp_path / "out", reference=s, open_assistant=fake_opener(opened))
    rows = {r.id: r for r in res.rows}
    assert res.counts == {"questions": 6, "answerable": 4, "unanswerable": 2, "tp": 1, "fp": 0, "fn": 1, "tn": 4}
    assert rows["purr"].scores["hit@1"] == 1.0 and rows["purr"].failures == []
    assert rows["both"].scores["recall@2"] == 1.0
    # the follow-up was asked with the earlier turn and the system's own answer
    follow = [a for a in opened[0].asked if a[0] == "What about the tail?"]
    first = ("Who do dogs bark at?", "Dogs bark at strangers. [1]")
    assert follow and all([(t.question, t.answer) for t in h] == [first] and h[0].citations for _, h, _ in follow)
    assert {k for _, _, k in follow} == {10, 2}  # retrieval scored at 10, answered with settings.k
    assert rows["tail"].scores["recall@2"] == 1.0
    # "Do dogs sleep all day?" overlaps both documents: a wrong answer instead of an abstention
    assert rows["dog-nap"].failures == ["wrong abstention"] and not rows["dog-nap"].abstained
    assert rows["france"].abstained and rows["france"].failures == []
    assert res.overall["abstain_precision"] == 1.0 and res.overall["abstain_recall"] == 0.5
    assert res.overall["citation_precision"] == 1.0
    assert res.overall["answer_f1"] is not None and res.overall["latency_p95_ms"] is not None
    assert len(res.curves["recall"]) == 10 and res.curves["recall"][-1] == 1.0
    assert res.index_dir == str(tmp_path / "index")
    assert res.by_kind["unanswerable"]["abstain_correct"] == 0.5


class _Reader:
    """The index statistics probes need: term counts over the fake's sentences, and the texts."""

    doc_texts = DOCS

    def term_counts(self, terms):  # noqa: ANN001, ANN201
        from assistant.index.terms import tokenize

        chunks = [set(tokenize(s)) for text in DOCS.values() for s in text.split(".") if s.strip()]
        return {t: sum(t in c for c in chunks) for t in terms}, len(chunks)


def test_probes_are_asked_and_scored_apart_from_the_questions(docs: Path, questions: Path, tmp_path: Path):
    class Pipeline(FakePipeline):
        retriever = type("R", (), {"reader": _Reader()})()

    s = Settings.load(env={}, docs_dir=docs, index_dir=tmp_path / "index", k=2)
    plain = run_eval(s, questions, out_dir=tmp_path / "out", reference=s, open_assistant=Pipeline)
    res = run_eval(s, questions, out_dir=tmp_path / "out", reference=s, open_assistant=Pipeline, probes=5)
    assert [r.id for r in res.rows] == [r.id for r in plain.rows]  # the questions' scores are untouched
    assert {k: v for k, v in res.overall.items() if "ms" not in k and "probe" not in k and "control" not in k} \
        == {k: v for k, v in plain.overall.items() if "ms" not in k}
    assert res.overall["false_abstention"] == 0.0 and plain.probe_rows == []
    probes = [r for r in res.probe_rows if not r.answerable]
    assert 0 < len(probes) <= 5 and res.counts["probes"] == len(probes)
    assert all(r.kind.startswith("probe:") and r.id.startswith("probe-") for r in probes)
    # The fake answers whenever a word overlaps: probes that keep a sentence's words get answered.
    answered = [r for r in probes if not r.abstained]
    assert answered and all(r.failures == ["wrong abstention"] for r in answered)
    assert res.overall["probe_abstain_recall"] == pytest.approx(1 - len(answered) / len(probes))
    kinds = {r.kind for r in res.probe_rows}
    assert kinds <= set(res.by_kind) and all(res.by_kind[k]["n"] >= 1 for k in kinds)
    md = format_markdown([res])
    assert "## Probes — current" in md and answered[0].id in md


def test_wrong_retrieval_and_missing_quote_are_reported(docs: Path, tmp_path: Path):
    path = tmp_path / "qs.jsonl"
    path.write_text(json.dumps(q("tricky", "When does a cat purr?", ["dogs.txt"],
                                 ["Dogs bark at strangers."], "never")) + "\n", encoding="utf-8")
    s = Settings.load(env={}, docs_dir=docs, index_dir=tmp_path / "index", k=1)
    res = run_eval(s, path, out_dir=tmp_path / "out", reference=s, open_assistant=fake_opener([]))
    assert res.rows[0].failures == ["wrong retrieval", "missing gold quote"]
    assert res.overall["citation_precision"] == 0.0  # cites cats.txt, not a gold source
    md = format_markdown([res])
    assert "### Wrong retrieval (1)" in md and "### Missing gold quote (1)" in md
    assert "“Dogs bark at strangers.”" in md


def test_gold_problems_stop_the_run_before_opening(docs: Path, tmp_path: Path):
    path = tmp_path / "qs.jsonl"
    path.write_text(json.dumps(q("x", "?", ["cats.txt"], ["Cats fly."], "no")) + "\n", encoding="utf-8")
    s = Settings.load(env={}, docs_dir=docs, index_dir=tmp_path / "index")
    with pytest.raises(QuestionFileError, match="2 gold problem.*'Cats fly.'"):
        run_eval(s, path, reference=s, open_assistant=lambda _s: pytest.fail("opened"))


def test_other_index_settings_get_their_own_index_folder(docs: Path, tmp_path: Path):
    ref = Settings.load(env={}, index_dir=tmp_path / "index")
    out = tmp_path / "out"
    assert index_dir_for(ref.replace(k=3, retrieval="dense"), out, ref) == ref.index_dir
    other_docs = index_dir_for(ref.replace(docs_dir=docs), out, ref)
    other_chunks = index_dir_for(ref.replace(chunk_tokens=256), out, ref)
    assert other_docs.parent == out / "indexes" and other_docs.name.startswith("docs-")
    assert len({other_docs, other_chunks, ref.index_dir}) == 3
    assert index_dir_for(ref.replace(chunk_tokens=256), out, ref) == other_chunks  # stable


def test_report_files_and_comparison_table(docs: Path, questions: Path, tmp_path: Path):
    s = Settings.load(env={}, docs_dir=docs, index_dir=tmp_path / "index", k=2)
    a = run_eval(s, questions, out_dir=tmp_path / "out", reference=s, open_assistant=fake_opener([]))
    b = run_eval(s.replace(k=1), questions, out_dir=tmp_path / "out", reference=s, label="k=1",
                 open_assistant=fake_opener([]))
    table = format_table([a, b])
    assert table.splitlines()[0].split() == ["metric", "current", "k=1", "difference"]
    assert "6 questions (4 answerable, 2 unanswerable)" in table
    paths = write_report([a, b], tmp_path / "out")
    assert [p.name for p in paths] == ["report.json", "report.md", "recall_at_k.png"]
    data = json.loads(paths[0].read_text(encoding="utf-8"))
    assert [c["label"] for c in data["configurations"]] == ["current", "k=1"]
    assert data["configurations"][0]["rows"][0]["id"] == "purr"
    md = paths[1].read_text(encoding="utf-8")
    assert "## Overall" in md and "## Changes — current → k=1" in md and "## Failures — k=1" in md
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parse_overrides_types_and_errors():
    base = Settings.load(env={})
    assert parse_overrides(["retrieval=dense", "chunk-tokens=256", "dense_weight=0.5"], base) == {
        "retrieval": "dense", "chunk_tokens": 256, "dense_weight": 0.5}
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        parse_overrides(["colour=red"], base)
    with pytest.raises(ConfigError, match="chunk_tokens: expected int"):
        parse_overrides(["chunk_tokens=big"], base)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["dense"], base)
    with pytest.raises(ConfigError, match="retrieval: must be"):
        parse_overrides(["retrieval=magic"], base)
    # A boolean is read as one: "false" is not a (truthy) string.
    assert parse_overrides(["sentence_vectors=false", "verbose=1"], base) == {
        "sentence_vectors": False, "verbose": True}
    with pytest.raises(ConfigError, match="sentence_vectors: expected bool"):
        parse_overrides(["sentence_vectors=maybe"], base)


def test_cli_eval_with_compare(docs: Path, questions: Path, tmp_path: Path, monkeypatch, capsys):
    from assistant.cli import main

    monkeypatch.setattr(runner, "make_opener", lambda _progress=None: fake_opener([]))
    for name in list(__import__("os").environ):
        if name.startswith("ASSISTANT_"):
            monkeypatch.delenv(name)
    out = tmp_path / "out"
    code = main(["eval", str(questions), "--docs", str(docs), "--out", str(out), "--k", "2",
                 "--compare", "retrieval=bm25", "k=1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "retrieval=bm25 k=1" in captured.out and "difference" in captured.out
    assert (out / "report.md").is_file() and (out / "recall_at_k.png").is_file()
    assert "opening the index in" in captured.err and str(out / "indexes") in captured.err

    code = main(["eval", str(questions), "--docs", str(docs), "--out", str(out), "--compare", "nope=1"])
    assert code == 2 and "unknown setting 'nope'" in capsys.readouterr().err
    code = main(["eval", str(questions), "--docs", str(docs), "--out", str(out), "--probes", "-1"])
    assert code == 2 and "--probes: must be at least 0" in capsys.readouterr().err


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from assistant.cli import build_parser; build_parser(); "
            "import assistant.evaluate.cli; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "False"
