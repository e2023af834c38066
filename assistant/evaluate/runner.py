"""Run a question file through the real pipeline and score it: retrieval with k=10 for the recall curves,
answers with settings.k, follow-ups with the conversation they continue."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from ..records import Answer, Hit, Turn, content_id
from ..redact import mask_url
from ..settings import Settings
from . import metrics as m
from .questions import Question, QuestionFileError, check_gold, follow_chain, load_questions

CURVE_K = 10
INDEX_KEYS = ("docs_dir", "model", "chunk_tokens", "chunk_overlap")  # the settings an index is built from


class Pipeline(Protocol):
    """What the runner needs of `assistant.app.Assistant` (a fake in unit tests)."""

    def ask(self, question: str, history: Sequence[Turn] = (), k: int | None = None,
            mode: str | None = None) -> Answer: ...

    def search(self, query: str, k: int | None = None) -> list[Hit]: ...

    def document_text(self, source: str) -> str: ...


@dataclass
class Row:
    """One question's outcome: what was expected, what came back, its scores and why it failed."""

    id: str
    kind: str
    question: str
    answerable: bool
    follows: str | None
    gold_sources: list[str]
    gold_quotes: list[str]
    gold_answer: str
    answer: str
    abstained: bool
    citations: list[dict[str, Any]]
    hits: list[dict[str, Any]]  # the CURVE_K retrieved passages, with a `relevant` flag
    scores: dict[str, float | None]
    latency_ms: float  # ask()
    search_ms: float  # search() with k=CURVE_K
    failures: list[str] = field(default_factory=list)


@dataclass
class EvalResult:
    label: str
    questions_path: str
    index_dir: str
    settings: dict[str, Any]
    overall: dict[str, float | None]  # metric name -> value (None: no question it applies to)
    curves: dict[str, list[float | None]]  # recall / quote_recall / source_recall at k = 1..CURVE_K
    by_kind: dict[str, dict[str, float | None]]
    counts: dict[str, int]
    rows: list[Row]
    probe_rows: list[Row] = field(default_factory=list)  # generated probes and controls (`probes` > 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- index folders ----------------------------------------------------------------------------------

def index_key(s: Settings) -> tuple[str, ...]:
    key = (str(Path(s.docs_dir).resolve()), s.model, str(s.chunk_tokens), str(s.chunk_overlap), s.backend)
    defaults = Settings()
    if (s.ann_threshold, s.ann_nprobe) != (defaults.ann_threshold, defaults.ann_nprobe):  # ANN files differ
        key += (f"ann={s.ann_threshold}/{s.ann_nprobe}",)
    return key


def index_dir_for(settings: Settings, out_dir: Path, reference: Settings) -> Path:
    """settings.index_dir when the index-defining settings match `reference` (whose index lives there);
    otherwise a folder under `out_dir` named after them, so other settings never touch that index."""
    if index_key(settings) == index_key(reference) and settings.index_dir == reference.index_dir:
        return settings.index_dir
    name = f"{Path(settings.docs_dir).resolve().name or 'docs'}-{content_id(*index_key(settings))[:10]}"
    return Path(out_dir) / "indexes" / name


def _open_real(settings: Settings, cache: dict[str, Any], say: Callable[[str], None] | None) -> Pipeline:
    from ..app import Assistant  # heavy: torch, faiss

    last = [-1]

    def build_progress(stage: str, done: int, total: int, item: str = "") -> None:
        tenth = 10 * done // max(total, 1)
        if say is not None and stage == "embedding" and total >= 64 and tenth != last[0]:
            last[0] = tenth
            say(f"  {stage} {done}/{total}")

    key = f"{settings.model}|{settings.backend}"
    # Scores are of the complete index: the build waits for every vector.
    a = Assistant.open(settings, embedder=cache.get(key), progress=build_progress, background=False, wait=True)
    retriever = getattr(a, "retriever", None)
    if retriever is not None and settings.backend == "torch":  # an exported model belongs to its index
        cache.setdefault(key, retriever.embedder)
    return a


def make_opener(progress: Callable[[str], None] | None = None) -> Callable[[Settings], Pipeline]:
    """Opens real Assistants, loading each embedding model once across configurations; index building
    reports to `progress`."""
    cache: dict[str, Any] = {}
    return lambda s: _open_real(s, cache, progress)


# --- running ----------------------------------------------------------------------------------------

def run_eval(settings: Settings, questions_path: Path, *, k: int = CURVE_K, out_dir: Path = Path("eval/out"),
             reference: Settings | None = None, label: str = "current",
             open_assistant: Callable[[Settings], Pipeline] | None = None,
             progress: Callable[[str], None] | None = None, probes: int = 0) -> EvalResult:
    """Score `questions_path` against the documents of `settings.docs_dir`.

    `reference` is the configuration whose index lives in settings.index_dir (default: Settings.load());
    any other docs/model/chunk settings get their own index under `out_dir`. `open_assistant` builds the
    pipeline (default: the real Assistant, building or updating the index as needed). With `probes`, up
    to that many unanswerable probes and as many answerable controls are generated from the questions
    and the index (assistant/evaluate/probes.py) and asked too; they are scored apart from the questions."""
    say = progress or (lambda _msg: None)
    questions = load_questions(Path(questions_path))
    problems = check_gold(questions, settings.docs_dir)
    if problems:
        raise QuestionFileError(
            f"{questions_path}: {len(problems)} gold problem(s) against {settings.docs_dir}; first: {problems[0]}")
    reference = Settings.load() if reference is None else reference
    settings = settings.replace(index_dir=index_dir_for(settings, Path(out_dir), reference))
    opener = open_assistant or make_opener()
    where = settings.index_dir if settings.store == "local" else mask_url(settings.store)
    say(f"[{label}] opening the index in {where} (built or updated if needed)")
    a = opener(settings)
    dense_index = getattr(getattr(a, "retriever", None), "dense_index", "")
    if dense_index:
        say(f"[{label}] dense search: {dense_index}")
    depth = max(k, settings.k)
    a.search("warm-up", 1)  # the first query pays one-off costs that are not latency

    answers: dict[str, Answer] = {}
    hit_lists: list[list[Hit]] = []
    answer_list: list[Answer] = []
    latencies: list[float] = []
    search_times: list[float] = []
    for i, q in enumerate(questions, start=1):
        history = [Turn(p.question, answers[p.id].text, answers[p.id].citations) for p in follow_chain(questions, q)]
        t = time.perf_counter()
        if history:
            # The answer path searches with the conversation; score exactly the passages it would use.
            hits = list(a.ask(q.question, history=history, k=depth, mode=settings.mode).hits)
        else:
            hits = list(a.search(q.question, depth))
        search_times.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        ans = a.ask(q.question, history=history, k=settings.k, mode=settings.mode)
        latencies.append((time.perf_counter() - t) * 1000)
        answers[q.id] = ans
        hit_lists.append(hits)
        answer_list.append(ans)
        if i % 10 == 0 or i == len(questions):
            say(f"[{label}] {i}/{len(questions)} questions")

    def text_of(source: str) -> str | None:
        try:
            return a.document_text(source)
        except (KeyError, FileNotFoundError):
            return None

    golds = [m.Gold(answerable=q.answerable, sources=q.gold_sources, quotes=q.gold_quotes,
                    spans=m.gold_spans(q.gold_sources, q.gold_quotes, text_of), answer=q.answer,
                    needs_all=q.kind == "multi_doc")
             for q in questions]
    cited = {c.source for ans in answer_list for c in ans.citations}
    doc_texts = {s: t for s in cited if (t := text_of(s)) is not None}
    result = _score(label, questions_path, settings, questions, golds, hit_lists, answer_list, doc_texts,
                    latencies, search_times, k)
    if probes > 0:
        _add_probes(result, a, settings, questions, {q.id: g for q, g in zip(questions, golds, strict=True)},
                    probes, say, label)
    return result


def _add_probes(result: EvalResult, a: Pipeline, settings: Settings, questions: list[Question],
                golds: dict[str, m.Gold], n: int, say: Callable[[str], None], label: str) -> None:
    """Ask generated probes (unanswerable) and controls (answerable rewrites keeping their question's
    gold); add their rows, per-strategy scores and probe_abstain_recall / control_false_abstention."""
    from .probes import make_controls, make_probes

    reader = a.retriever.reader  # type: ignore[attr-defined]  # the Assistant's index reader

    def texts() -> Iterator[str]:
        return (reader.doc_texts[p] for p in reader.doc_texts)

    made = make_probes(questions, reader.term_counts, n, texts) + make_controls(questions, reader.term_counts, n,
                                                                               texts)
    say(f"[{label}] {len(made)} probes and controls")
    rows: list[Row] = []
    for p in made:
        q = p.question
        t = time.perf_counter()
        ans = a.ask(q.question, k=settings.k, mode=settings.mode)
        ms = (time.perf_counter() - t) * 1000
        gold = golds.get(p.source_id) if q.answerable else None
        support = m.quote_support([ans], [gold]).value if gold is not None else None
        right = ans.abstained != q.answerable
        rows.append(Row(
            id=q.id, kind=f"{q.kind}:{p.strategy}", question=q.question, answerable=q.answerable, follows=None,
            gold_sources=list(q.gold_sources), gold_quotes=list(q.gold_quotes), gold_answer=q.answer,
            answer=ans.text, abstained=ans.abstained,
            citations=[{"n": c.n, "source": c.source, "start": c.start, "end": c.end, "quote": c.quote}
                       for c in ans.citations],
            hits=[{"rank": h.rank, "source": h.source, "start": h.start, "end": h.end, "score": round(h.score, 6),
                   "text": h.text} for h in ans.hits],
            scores={"abstain_correct": float(right), "quote_support": support}, latency_ms=round(ms, 2),
            search_ms=0.0, failures=[] if right else ["wrong abstention"]))
    result.probe_rows = rows
    probe = [r for r in rows if not r.answerable]
    control = [r for r in rows if r.answerable]
    result.overall["probe_abstain_recall"] = m.mean([float(r.abstained) for r in probe])
    result.overall["control_false_abstention"] = m.mean([float(r.abstained) for r in control])
    result.counts.update(probes=len(probe), controls=len(control))
    for kind in sorted({r.kind for r in rows}):
        of = [r for r in rows if r.kind == kind]
        result.by_kind[kind] = {"n": float(len(of)),
                                "abstain_correct": m.mean([r.scores["abstain_correct"] for r in of]),
                                "quote_support": m.mean([r.scores["quote_support"] for r in of])}


def _score(label: str, questions_path: Path, settings: Settings, questions: list[Question], golds: list[m.Gold],
           hit_lists: list[list[Hit]], answers: list[Answer], doc_texts: dict[str, str],
           latencies: list[float], search_times: list[float], k: int) -> EvalResult:
    ak = settings.k
    recall = {n: m.recall_at_k(hit_lists, golds, n) for n in range(1, k + 1)}
    quote_recall = {n: m.quote_recall_at_k(hit_lists, golds, n) for n in range(1, k + 1)}
    source_recall = {n: m.source_recall_at_k(hit_lists, golds, n) for n in range(1, k + 1)}
    recall_ak = m.recall_at_k(hit_lists, golds, ak)
    quote_recall_ak = m.quote_recall_at_k(hit_lists, golds, ak)
    hit1 = m.hit_at_1(hit_lists, golds)
    mrr = m.mrr(hit_lists, golds, k)
    ndcg = m.ndcg_at_k(hit_lists, golds, k)
    f1 = m.token_f1(answers, golds)
    support = m.quote_support(answers, golds)
    cprec = m.citation_precision(answers, golds, doc_texts)
    abst = m.abstention([a.abstained for a in answers], [q.answerable for q in questions])
    false_abst = m.false_abstention([a.abstained for a in answers], [q.answerable for q in questions])
    lat = m.latency(latencies)
    slat = m.latency(search_times)

    overall: dict[str, float | None] = {
        "hit@1": hit1.value,
        f"recall@{ak}": recall_ak.value,
        f"recall@{k}": recall[k].value,
        f"quote_recall@{ak}": quote_recall_ak.value,
        f"quote_recall@{k}": quote_recall[k].value,
        f"source_recall@{k}": source_recall[k].value,
        "mrr": mrr.value,
        f"ndcg@{k}": ndcg.value,
        "answer_f1": f1.value,
        "quote_support": support.value,
        "citation_precision": cprec.value,
        "abstain_precision": abst.precision.value,
        "abstain_recall": abst.recall.value,
        "abstain_accuracy": abst.accuracy.value,
        "false_abstention": false_abst.value,
        "latency_p50_ms": lat["p50"].value,
        "latency_p95_ms": lat["p95"].value,
        "search_p50_ms": slat["p50"].value,
        "search_p95_ms": slat["p95"].value,
    }
    curves = {"recall": [recall[n].value for n in range(1, k + 1)],
              "quote_recall": [quote_recall[n].value for n in range(1, k + 1)],
              "source_recall": [source_recall[n].value for n in range(1, k + 1)]}

    rows: list[Row] = []
    for i, (q, g, hits, ans) in enumerate(zip(questions, golds, hit_lists, answers, strict=True)):
        scores = {
            "hit@1": hit1.per_question[i], f"recall@{ak}": recall_ak.per_question[i],
            f"recall@{k}": recall[k].per_question[i], f"quote_recall@{k}": quote_recall[k].per_question[i],
            "mrr": mrr.per_question[i], f"ndcg@{k}": ndcg.per_question[i], "answer_f1": f1.per_question[i],
            "quote_support": support.per_question[i], "citation_precision": cprec.per_question[i],
            "abstain_correct": abst.accuracy.per_question[i],
        }
        rows.append(Row(
            id=q.id, kind=q.kind, question=q.question, answerable=q.answerable, follows=q.follows,
            gold_sources=list(q.gold_sources), gold_quotes=list(q.gold_quotes), gold_answer=q.answer,
            answer=ans.text, abstained=ans.abstained,
            citations=[{"n": c.n, "source": c.source, "start": c.start, "end": c.end, "quote": c.quote}
                       for c in ans.citations],
            hits=[{"rank": h.rank, "source": h.source, "start": h.start, "end": h.end,
                   "score": round(h.score, 6), "relevant": m.is_relevant(h, g), "text": h.text}
                  for h in hits],
            scores=scores, latency_ms=round(latencies[i], 2), search_ms=round(search_times[i], 2),
            failures=_failures(q, g, scores, ans, ak)))

    by_kind: dict[str, dict[str, float | None]] = {}
    for kind, n in Counter(q.kind for q in questions).items():
        idx = [i for i, q in enumerate(questions) if q.kind == kind]
        by_kind[kind] = {"n": float(n)}
        for name in (f"recall@{ak}", "answer_f1", "quote_support", "abstain_correct"):
            by_kind[kind][name] = m.mean([rows[i].scores[name] for i in idx])
    counts = {"questions": len(questions), "answerable": sum(q.answerable for q in questions),
              "unanswerable": sum(not q.answerable for q in questions), **abst.counts}
    return EvalResult(label=label, questions_path=str(questions_path), index_dir=str(settings.index_dir),
                      settings=_settings_dict(settings), overall=overall, curves=curves, by_kind=by_kind,
                      counts=counts, rows=rows)


def _failures(q: Question, g: m.Gold, scores: dict[str, float | None], ans: Answer, ak: int) -> list[str]:
    out = []
    if q.answerable and not g.spans:
        out.append("gold not in index")  # no gold quote found in the loaded text of a gold source
    if q.answerable and (scores[f"recall@{ak}"] or 0.0) < 1.0 and g.spans:
        out.append("wrong retrieval")
    if ans.abstained == q.answerable:
        out.append("wrong abstention")
    elif q.answerable and scores["quote_support"] == 0.0:
        out.append("missing gold quote")
    return out


def _settings_dict(s: Settings) -> dict[str, Any]:
    secret = {"llm_api_key", "auth_password", "api_token"}
    return {f.name: ("***" if f.name in secret and getattr(s, f.name) else mask_url(s.store) if f.name == "store"
                     else str(v) if isinstance(v := getattr(s, f.name), Path) else v) for f in fields(s)}
