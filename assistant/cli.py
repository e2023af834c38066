"""The command line: a thin layer over the library. Heavy imports happen inside the commands, so
`assistant --help` answers at once."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import AssistantError
from .settings import Settings


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index-dir", type=Path, help="index folder (default: index/)")
    p.add_argument("--docs", dest="docs_dir", type=Path, help="documents folder (default: documents/)")
    p.add_argument("--model", help="sentence-transformers model name or path (default: bundled all-MiniLM-L6-v2)")
    p.add_argument("--chunk-tokens", type=int, help="chunk size in tiktoken tokens")
    p.add_argument("--chunk-overlap", type=int, help="overlap between chunks in tiktoken tokens")
    p.add_argument("--verbose", action="store_true", default=None,
                   help="show library logs and progress bars (model loading)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistant", description="Offline, cited question answering over a folder of documents.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("index", help="build or update the index of a documents folder")
    p.add_argument("docs_pos", nargs="?", type=Path, metavar="DOCS_DIR", help="documents folder")
    _common(p)
    p.add_argument("--rebuild", action="store_true", help="re-embed everything")

    p = sub.add_parser("search", help="retrieve passages for a query")
    p.add_argument("query")
    _common(p)
    p.add_argument("--k", type=int, help="passages to return")
    p.add_argument("--retrieval", choices=["hybrid", "dense", "bm25"])
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("ask", help="answer a question with citations")
    p.add_argument("question")
    _common(p)
    p.add_argument("--k", type=int, help="passages to answer from")
    p.add_argument("--mode", choices=["extractive", "llm"])
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("chat", help="a multi-turn conversation in the terminal")
    _common(p)
    p.add_argument("--k", type=int)
    p.add_argument("--mode", choices=["extractive", "llm"])

    p = sub.add_parser("serve", help="serve the web chat (builds or updates the index first)")
    _common(p)
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 7860)")

    try:
        from .evaluate.cli import add_parser as add_eval
    except ImportError:  # pragma: no cover - the evaluate package is part of the distribution
        add_eval = None
    if add_eval is not None:
        add_eval(sub)
    return parser


_KEYS = ("docs_dir", "index_dir", "model", "chunk_tokens", "chunk_overlap", "k", "mode", "host", "port",
         "retrieval", "verbose")


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {k: getattr(args, k, None) for k in _KEYS}
    if getattr(args, "docs_pos", None) is not None:
        overrides["docs_dir"] = args.docs_pos
    settings = Settings.load(**overrides)
    if args.command == "eval":
        return settings  # the evaluation keeps an index per configuration of its own
    import os

    from .index.recorded import settings_of_index

    explicit = {k for k, v in overrides.items() if v is not None}
    explicit |= {k for k in _KEYS if f"ASSISTANT_{k.upper()}" in os.environ}
    settings, adopted = settings_of_index(settings, explicit)
    if adopted and settings.verbose:
        print(f"using the index's {', '.join(adopted)}", file=sys.stderr)
    return settings


class _Progress:
    """Progress on stderr: a bar on a terminal, a line every 10% otherwise; the file being read, on a
    terminal always, otherwise every 5% and whenever the file is big (one file can take a while)."""

    BIG_FILE = 1 << 20

    def __init__(self, docs_dir: Path | None = None) -> None:
        self.tty = sys.stderr.isatty()
        self.last = -1
        self.docs_dir = docs_dir
        self.width = 0

    def __call__(self, stage: str, done: int, total: int, item: str = "") -> None:
        if stage == "reading":
            self._reading(done, total, item)
            return
        if total < 64 or stage != "embedding":
            return
        pct = int(100 * done / total)
        if self.tty:
            bar = "#" * (pct // 4)
            print(f"\r{stage} {bar:<25} {done}/{total}", end="" if done < total else "\n", file=sys.stderr)
        elif pct // 10 != self.last // 10:
            print(f"{stage} {done}/{total}", file=sys.stderr)
        self.last = pct

    def _reading(self, done: int, total: int, item: str) -> None:
        if self.tty:
            line = f"reading {done}/{total} {item}"[:100] if item else ""
            print("\r" + line.ljust(self.width), end="\r" if not item else "", file=sys.stderr, flush=True)
            self.width = len(line)
            return
        if not item:
            return
        big = False
        if self.docs_dir is not None:
            with contextlib.suppress(OSError):
                big = (self.docs_dir / item).stat().st_size >= self.BIG_FILE
        if big or done % max(1, total // 20) == 0:
            print(f"reading {done + 1}/{total} {item}", file=sys.stderr, flush=True)


def _index(args: argparse.Namespace, s: Settings) -> int:
    from .index import build_index

    report = build_index(s, rebuild=args.rebuild, progress=_Progress(s.docs_dir), replace_folder=True)
    print(report.summary())
    for sk in report.skipped:
        print(f"  skipped {sk.rel}: {sk.reason}")
    return 0


def _open(s: Settings, progress: Any = None):  # noqa: ANN202
    """The Assistant over the index, updated first; what the update did goes to stderr."""
    from .app import Assistant

    a = Assistant.open(s, progress=progress or _Progress(s.docs_dir))
    report = a.last_build
    if report is not None and report.wrote:
        print(f"index updated: {report.summary()}", file=sys.stderr)
    if report is not None:
        for sk in report.skipped:
            print(f"  skipped {sk.rel}: {sk.reason}", file=sys.stderr)
    for note in a.notices:
        print(f"note: {note}", file=sys.stderr)
    return a


def _search(args: argparse.Namespace, s: Settings) -> int:
    a = _open(s)
    hits, timings = a.retriever.search_with_timings(args.query, args.k)
    if args.json:
        from .jsonable import search_dict

        print(json.dumps(search_dict(args.query, hits, timings), ensure_ascii=False))
        return 0
    for h in hits:
        where = " > ".join(h.headings) or "-"
        print(f"[{h.rank}] {h.score:.4f}  {h.source}:{h.start}-{h.end}  ({where})")
        print("    " + " ".join(h.text.split())[:300])
    return 0


def _print_answer(answer: Any, streamed: bool) -> None:
    if not streamed:
        print(answer.text)
    for note in answer.notices:
        print(f"note: {note}")
    if answer.citations:
        print()
    for c in answer.citations:
        where = " > ".join(c.headings[-2:]) or "-"
        page = f", page {c.page}" if c.page else ""
        print(f"[{c.n}] {c.source}{page} ({where}) {c.start}-{c.end}: \u201c{c.quote}\u201d")
    if answer.abstained and answer.hits:
        print("\nClosest passages:")
        for h in answer.hits[:3]:
            print(f"  {h.source}:{h.start}-{h.end}  " + " ".join(h.text.split())[:200])


def _ask(args: argparse.Namespace, s: Settings) -> int:
    a = _open(s)
    if args.json:
        from .jsonable import answer_dict

        print(json.dumps(answer_dict(a.ask(args.question, k=args.k, mode=args.mode)), ensure_ascii=False))
        return 0
    answer = _stream(a, args.question, (), args.k, args.mode)
    _print_answer(answer, streamed=True)
    return 0


def _stream(a: Any, question: str, history: Sequence[Any], k: int | None, mode: str | None) -> Any:
    from .records import Answer

    answer = None
    for event in a.ask_stream(question, history, k, mode):
        if isinstance(event, Answer):
            answer = event
        else:
            print(event, end="", flush=True)
    print()
    return answer


def _chat(args: argparse.Namespace, s: Settings) -> int:
    from .records import Turn

    a = _open(s)
    history: list[Turn] = []
    print("Ask about the documents; an empty line or Ctrl-D ends.", file=sys.stderr)
    while True:
        try:
            q = input("> ").strip()
        except EOFError:
            break
        if not q:
            break
        answer = _stream(a, q, history, args.k, args.mode)
        _print_answer(answer, streamed=True)
        history.append(Turn(q, answer.text, answer.citations))
    return 0


def _serve(args: argparse.Namespace, s: Settings) -> int:
    from .ui.ports import check_port_free

    t = time.perf_counter()
    check_port_free(s.host, s.port)  # at once, not after the model has loaded
    a = _open(s)
    print(f"index ready: {len(a.documents())} documents ({time.perf_counter() - t:.1f} s)", file=sys.stderr)
    import threading

    def warm_up() -> None:  # the model loads while the server starts; the first question waits for it
        try:
            a.warm_up()
        except AssistantError as e:
            print(f"error: {e}", file=sys.stderr)

    threading.Thread(target=warm_up, name="load-model", daemon=True).start()
    from .ui.app import serve

    serve(a, host=s.host, port=s.port)
    return 0


COMMANDS = {"index": _index, "search": _search, "ask": _ask, "chat": _chat, "serve": _serve}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        if args.command == "eval":
            from .evaluate.cli import run as run_eval

            return run_eval(args, settings)
        return COMMANDS[args.command](args, settings)
    except AssistantError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
