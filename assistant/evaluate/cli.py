"""`assistant eval`: score a question file, optionally against a second configuration. Registered by
assistant/cli.py; everything heavy is imported inside `run`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..settings import Settings, parse_value

DEFAULT_QUESTIONS = Path("eval/questions.jsonl")
DEFAULT_OUT = Path("eval/out")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval", help="score retrieval, answers and abstention on a question file",
        description="Run a question file through the pipeline and write report.json, report.md and "
                    "recall_at_k.png. Other docs/model/chunk settings than the default index's get their "
                    "own index under --out.")
    p.add_argument("questions", nargs="?", type=Path, default=DEFAULT_QUESTIONS, metavar="QUESTIONS",
                   help=f"question file, JSONL (default: {DEFAULT_QUESTIONS})")
    p.add_argument("--index-dir", type=Path, help="index folder to use for these settings (default: index/, "
                                                  "or a folder under --out when --docs differs)")
    p.add_argument("--store", help="where the index lives: local (default) or a postgresql:// URL")
    p.add_argument("--docs", dest="docs_dir", type=Path, help="documents folder (default: documents/)")
    p.add_argument("--k", type=int, help="passages the answerer gets (retrieval is always scored to k=10)")
    p.add_argument("--mode", choices=["extractive", "llm"], help="answer mode")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--export-feedback", type=Path, metavar="OUT.jsonl",
                   help="instead of scoring: write the chat's thumbs-down answers as draft questions (gold "
                        "quotes left for a person to fill) and exit")
    p.add_argument("--probes", type=int, default=0, metavar="N",
                   help="also ask up to N generated unanswerable probes (a question's subject swapped for one "
                        "the corpus never names) and N answerable controls; scored apart, see eval/README.md")
    p.add_argument("--compare", nargs="+", metavar="KEY=VALUE",
                   help="also run the same settings with these overrides, e.g. retrieval=dense chunk_tokens=256")


def parse_overrides(pairs: list[str], base: Settings) -> dict[str, Any]:
    """KEY=VALUE strings as typed setting values (keys may use - or _)."""
    types = {f.name: f.type for f in fields(Settings)}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--compare: expected KEY=VALUE, got {pair!r}")
        if key not in types:
            raise ConfigError(f"--compare: unknown setting {key!r}; known: {', '.join(sorted(types))}")
        try:
            out[key] = parse_value(key, types[key], raw)
        except ConfigError as e:
            raise ConfigError(f"--compare: {e}") from None
    base.replace(**out)  # validates the combination now, before anything runs
    return out


def run(args: argparse.Namespace, settings: Settings) -> int:
    if getattr(args, "export_feedback", None) is not None:
        from .feedback import export_feedback

        n = export_feedback(settings.chat_db_path, args.export_feedback)
        print(f"wrote {n} draft question{'s' if n != 1 else ''} to {args.export_feedback}")
        return 0
    from .report import format_table, write_report
    from .runner import make_opener, run_eval

    # With an explicit --index-dir the given settings own that folder; otherwise the default settings do.
    reference = settings if getattr(args, "index_dir", None) is not None else Settings.load()
    overrides = parse_overrides(args.compare, settings) if args.compare else {}
    configs = [("current", settings)]
    if overrides:
        from ..redact import mask_url

        configs.append((mask_url(" ".join(args.compare)), settings.replace(**overrides)))

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    opener = make_opener(say)

    if getattr(args, "probes", 0) < 0:
        raise ConfigError(f"--probes: must be at least 0, got {args.probes}")
    results = [run_eval(s, args.questions, out_dir=args.out, reference=reference, label=label,
                        open_assistant=opener, progress=say, probes=getattr(args, "probes", 0))
               for label, s in configs]
    print(format_table(results))
    for path in write_report(results, args.out):
        print(f"wrote {path}")
    return 0
