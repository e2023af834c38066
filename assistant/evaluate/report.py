"""Present evaluation results: a compact terminal table, report.json, report.md (overall table, changes
between configurations, per-question failures) and recall_at_k.png."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from .runner import EvalResult, Row

FAILURE_KINDS = ("wrong retrieval", "missing gold quote", "wrong abstention", "gold not in index")
_HIGHER_IS_WORSE = ("latency", "search_p", "false_abstention", "control_false_abstention")


def _fmt(name: str, v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.0f}" if name.endswith("_ms") else f"{v:.3f}"


def _metric_names(results: Sequence[EvalResult]) -> list[str]:
    names: list[str] = []
    for r in results:
        names.extend(n for n in r.overall if n not in names)
    return names


def _delta(name: str, a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return ""
    d = b - a
    if abs(d) < (0.5 if name.endswith("_ms") else 0.0005):
        return "="
    better = (d < 0) if name.startswith(_HIGHER_IS_WORSE) else (d > 0)
    return f"{'+' if d > 0 else '-'}{_fmt(name, abs(d))} {'better' if better else 'worse'}"


def format_table(results: Sequence[EvalResult]) -> str:
    """Metrics down, configurations across; with two configurations, a column with the difference."""
    names = _metric_names(results)
    header = ["metric", *[r.label for r in results]] + (["difference"] if len(results) == 2 else [])
    rows = [header]
    for n in names:
        vals = [r.overall.get(n) for r in results]
        row = [n, *[_fmt(n, v) for v in vals]]
        if len(results) == 2:
            row.append(_delta(n, vals[0], vals[1]))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             .rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    first = results[0]
    lines.append(f"{first.counts['questions']} questions ({first.counts['answerable']} answerable, "
                 f"{first.counts['unanswerable']} unanswerable) from {first.questions_path}")
    return "\n".join(lines)


def changed_questions(a: EvalResult, b: EvalResult) -> list[tuple[str, str, str, str]]:
    """(id, what, in a, in b) for questions whose retrieval, abstention or gold support differ."""
    by_id = {r.id: r for r in b.rows}
    ak, bk = a.settings["k"], b.settings["k"]
    out = []
    for ra in a.rows:
        rb = by_id.get(ra.id)
        if rb is None:
            continue
        checks = [("retrieved gold", ra.scores.get(f"recall@{ak}"), rb.scores.get(f"recall@{bk}")),
                  ("hit@1", ra.scores.get("hit@1"), rb.scores.get("hit@1")),
                  ("abstention right", ra.scores.get("abstain_correct"), rb.scores.get("abstain_correct")),
                  ("quote support", ra.scores.get("quote_support"), rb.scores.get("quote_support"))]
        for what, x, y in checks:
            if x != y:
                out.append((ra.id, what, _fmt(what, x), _fmt(what, y)))
    return out


# --- markdown ---------------------------------------------------------------------------------------

def _cell(text: str, limit: int = 220) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *["| " + " | ".join(r) + " |" for r in rows]]


def _expected_got(row: Row, failure: str) -> tuple[str, str]:
    if failure == "wrong abstention":
        expected = f"answer: {row.gold_answer}" if row.answerable else "abstain"
        got = "abstained" if row.abstained else f"answer: {row.answer}"
        return expected, got
    if failure in ("wrong retrieval", "gold not in index"):
        expected = f"{', '.join(row.gold_sources)}: “{row.gold_quotes[0]}”" if row.gold_quotes else "–"
        top = [f"#{h['rank']} {h['source']}:{h['start']}-{h['end']}{' ✓' if h['relevant'] else ''} “{h['text']}”"
               for h in row.hits[:3]]
        return expected, " / ".join(top) or "no hits"
    expected = " / ".join(f"“{q}”" for q in row.gold_quotes[:2])
    got = " / ".join(f"[{c['n']}] {c['source']}: “{c['quote']}”" for c in row.citations) or \
        f"no citations; answer: {row.answer}"
    return expected, got


def format_markdown(results: Sequence[EvalResult]) -> str:
    first = results[0]
    out = ["# Evaluation report", "",
           f"Questions: `{first.questions_path}` — {first.counts['questions']} "
           f"({first.counts['answerable']} answerable, {first.counts['unanswerable']} unanswerable). "
           f"Generated {time.strftime('%Y-%m-%d %H:%M')}.", ""]
    for r in results:
        s = r.settings
        out.append(f"- **{r.label}**: docs `{s['docs_dir']}`, index `{r.index_dir}`, model `{s['model']}`, "
                   f"chunks {s['chunk_tokens']}/{s['chunk_overlap']}, retrieval {s['retrieval']}, "
                   f"k={s['k']}, mode {s['mode']}")
    out += ["", "## Overall", ""]
    names = _metric_names(results)
    header = ["metric", *[r.label for r in results]] + (["difference"] if len(results) == 2 else [])
    rows = []
    for n in names:
        vals = [r.overall.get(n) for r in results]
        rows.append([n, *[_fmt(n, v) for v in vals]] + ([_delta(n, *vals)] if len(results) == 2 else []))
    out += _md_table(header, rows)
    out += ["", "Retrieval metrics use answerable questions: a passage is relevant when it is in a gold "
            "document and contains a gold quote (multi_doc questions need one per gold document). "
            "`answer_f1` is SQuAD token F1 against the gold answer. See eval/README.md.", ""]

    for r in results:
        out += [f"## By kind — {r.label}", ""]
        kind_names = sorted({n for v in r.by_kind.values() for n in v if n != "n"})
        out += _md_table(["kind", "n", *kind_names],
                         [[k, f"{v['n']:.0f}", *[_fmt(n, v.get(n)) for n in kind_names]]
                          for k, v in sorted(r.by_kind.items())])
        out.append("")

    if len(results) == 2:
        changes = changed_questions(results[0], results[1])
        out += [f"## Changes — {results[0].label} → {results[1].label}", ""]
        if changes:
            out += _md_table(["id", "what", results[0].label, results[1].label],
                             [[i, w, x, y] for i, w, x, y in changes])
        else:
            out.append("No question changed.")
        out.append("")

    for r in results:
        out += [f"## Failures — {r.label}", ""]
        any_failure = False
        for kind in FAILURE_KINDS:
            failing = [row for row in r.rows if kind in row.failures]
            if not failing:
                continue
            any_failure = True
            out += [f"### {kind.capitalize()} ({len(failing)})", ""]
            table = []
            for row in failing:
                expected, got = _expected_got(row, kind)
                table.append([f"`{row.id}`", row.kind, _cell(row.question, 120), _cell(expected), _cell(got, 400)])
            out += _md_table(["id", "kind", "question", "expected", "got"], table)
            out.append("")
        if not any_failure:
            out += ["No failures.", ""]
    for r in results:
        if not r.probe_rows:
            continue
        wrong = [row for row in r.probe_rows if row.failures]
        out += [f"## Probes — {r.label}", "",
                f"{r.counts.get('probes', 0)} unanswerable probes and {r.counts.get('controls', 0)} answerable "
                "controls generated from the questions (assistant/evaluate/probes.py); "
                f"{len(wrong)} got the abstention wrong.", ""]
        if wrong:
            out += _md_table(["id", "kind", "question", "got"],
                             [[f"`{row.id}`", row.kind, _cell(row.question, 160),
                               "abstained" if row.abstained else _cell(f"answer: {row.answer}", 300)]
                              for row in wrong])
            out.append("")
    return "\n".join(out).rstrip() + "\n"


# --- plot -------------------------------------------------------------------------------------------

def plot_recall(results: Sequence[EvalResult], path: Path) -> Path:
    """recall@k and quote recall@k for k = 1..10, one pair of lines per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(results):
        color = colors[i % len(colors)]
        for key, style, name in (("recall", "-", "recall@k"), ("quote_recall", "--", "quote recall@k")):
            ys = r.curves.get(key, [])
            xs = [k for k, y in enumerate(ys, start=1) if y is not None]
            ax.plot(xs, [y for y in ys if y is not None], style, marker="o", markersize=3, color=color,
                    label=f"{r.label}: {name}")
    ax.set_xlabel("k (passages retrieved)")
    ax.set_ylabel("recall")
    ax.set_xticks(range(1, max((len(r.curves.get("recall", [])) for r in results), default=10) + 1))
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(f"Retrieval recall — {Path(results[0].questions_path).name}")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(results: Sequence[EvalResult], out_dir: Path) -> list[Path]:
    """Write report.json, report.md and recall_at_k.png into `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / "report.json"
    js.write_text(json.dumps({"configurations": [r.to_dict() for r in results]}, ensure_ascii=False, indent=1)
                  + "\n", encoding="utf-8")
    md = out_dir / "report.md"
    md.write_text(format_markdown(results), encoding="utf-8")
    png = plot_recall(results, out_dir / "recall_at_k.png")
    return [js, md, png]
