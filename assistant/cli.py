"""The command line: a thin layer over the library. Heavy imports happen inside the commands, so
`assistant --help` answers at once."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import AssistantError
from .progress import ConsoleProgress
from .settings import Settings


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index-dir", type=Path, help="index folder (default: index/)")
    p.add_argument("--store", help="where the index lives: local (the files under --index-dir, default) or a "
                                   "postgresql://user:pass@host:port/db URL (env ASSISTANT_STORE)")
    p.add_argument("--docs", dest="docs_dir", type=Path, help="documents folder (default: documents/)")
    p.add_argument("--model", help="sentence-transformers model name or path (default: bundled all-MiniLM-L6-v2)")
    p.add_argument("--backend", choices=["torch", "openvino-int8", "openvino-fp32"],
                   help="how the model runs (default: torch)")
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
    p.add_argument("--rebuild", action="store_true", help="rebuild everything (cached vectors are reused)")
    p.add_argument("--background", action="store_true",
                   help="return once the index is searchable; dense vectors fill in from a background process")
    p.add_argument("--only", nargs="+", metavar="PATH",
                   help="look at these files only (paths inside the documents folder: added, changed or gone); "
                        "the rest of the folder is not scanned")
    p.add_argument("--optimize", action="store_true",
                   help="after updating, merge the index into one segment (and build its ANN index if large)")

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

    p = sub.add_parser("mcp", help="serve the documents to MCP hosts: over stdio, or streamable HTTP with --http")
    _common(p)
    p.add_argument("--http", action="store_true", help="streamable HTTP at http://HOST:PORT/mcp instead of stdio")
    p.add_argument("--host", help="address to bind with --http (default 127.0.0.1)")
    p.add_argument("--port", dest="mcp_port", type=int, default=MCP_PORT,
                   help=f"port with --http (default {MCP_PORT})")

    try:
        from .evaluate.cli import add_parser as add_eval
    except ImportError:  # pragma: no cover - the evaluate package is part of the distribution
        add_eval = None
    if add_eval is not None:
        add_eval(sub)
    return parser


MCP_PORT = 8765

_KEYS = ("docs_dir", "index_dir", "store", "model", "backend", "chunk_tokens", "chunk_overlap", "k", "mode", "host",
         "port",
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


def _index(args: argparse.Namespace, s: Settings) -> int:
    from .index import build_index

    try:
        report = build_index(s, rebuild=args.rebuild, progress=ConsoleProgress(s.docs_dir), replace_folder=True,
                             wait=not args.background, paths=_relative(args.only, s.docs_dir))
    except KeyboardInterrupt:
        print("\ninterrupted: what was embedded is kept; `assistant index` resumes from there", file=sys.stderr)
        return 130
    print(report.summary())
    _print_skipped(report.skipped, sys.stdout)
    if args.optimize:
        from .index.build import optimize_index

        t = time.perf_counter()
        for line in optimize_index(s):
            print(f"optimize: {line}")
        print(f"optimize: {time.perf_counter() - t:.2f} s")
    if report.pending and args.background:
        pid, log = spawn_filler(s)
        print(f"the index is searchable; {report.pending:,} dense vectors fill in behind (pid {pid}, log {log})")
    return 0


def _relative(paths: Sequence[str] | None, docs: Path) -> list[str] | None:
    """--only PATH...: paths as given (relative to the documents folder), or absolute / relative to the
    working directory when they point inside it."""
    if paths is None:
        return None
    root = docs.resolve()
    out = []
    for p in paths:
        full = Path(p).absolute()
        inside = full.resolve() if full.exists() else full
        out.append(inside.relative_to(root).as_posix() if inside.is_relative_to(root) else p)
    return out


def _print_skipped(skipped: Sequence[Any], out: Any) -> None:
    """One line per file that could not be indexed; files of unsupported types (images, stylesheets) are
    counted by type on one line, as a folder of manuals has hundreds."""
    by_type: dict[str, int] = {}
    for sk in skipped:
        if sk.reason.startswith("unsupported type "):
            kind = sk.reason.removeprefix("unsupported type ")
            by_type[kind] = by_type.get(kind, 0) + 1
        else:
            print(f"  skipped {sk.rel}: {sk.reason}", file=out)
    if by_type:
        kinds = ", ".join(f"{k} ({n})" for k, n in sorted(by_type.items(), key=lambda kv: -kv[1]))
        print(f"  skipped {sum(by_type.values())} files of unsupported types: {kinds}", file=out)


def spawn_filler(s: Settings) -> tuple[int, Path]:
    """Start `assistant index` for this index in a process of its own that outlives this one: it embeds
    the chunks that have no dense vector yet, publishing as it goes (its output goes to index/index.log)."""
    import os
    import subprocess

    log = s.index_dir / "index.log"
    cmd = [sys.executable, "-m", "assistant.cli", "index", str(s.docs_dir), "--index-dir", str(s.index_dir),
           "--model", s.model, "--backend", s.backend, "--chunk-tokens", str(s.chunk_tokens),
           "--chunk-overlap", str(s.chunk_overlap)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=os.environ.copy())
    return proc.pid, log


def _open(s: Settings, progress: Any = None, *, serving: bool = False):  # noqa: ANN202
    """The Assistant over the index, updated first; what the update did goes to stderr. Dense vectors
    still missing fill in behind: in this process when serving, else in a process of their own."""
    from .app import Assistant

    a = Assistant.open(s, progress=progress or ConsoleProgress(s.docs_dir), background=serving)
    report = a.last_build
    if report is not None and report.wrote:
        print(f"index updated: {report.summary()}", file=sys.stderr)
        _print_skipped(report.skipped, sys.stderr)  # once, when they are news; `assistant index` lists them
    for note in a.notices:
        print(f"note: {note}", file=sys.stderr)
    dense, total = a.dense_status()
    if dense < total and not a.notices and not serving:
        pid, log = spawn_filler(s)
        print(f"note: dense vectors: {dense:,} of {total:,}; the rest fill in behind (pid {pid}, log {log})",
              file=sys.stderr)
    return a


def _search(args: argparse.Namespace, s: Settings) -> int:
    a = _open(s)
    hits, timings = a.retriever.search_with_timings(args.query, args.k)
    if args.json:
        from .jsonable import search_dict

        print(json.dumps(search_dict(args.query, hits, timings, a.retriever.dense_index), ensure_ascii=False))
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
    a = _open(s, serving=True)
    docs = a.document_count()
    print(f"index ready: {docs} documents ({time.perf_counter() - t:.1f} s)", file=sys.stderr)
    _warm_up(a)
    from .ui.app import serve

    serve(a, host=s.host, port=s.port)
    return 0


def _warm_up(a: Any) -> None:
    """Load the model in a thread while the server starts; the first question waits for it (the HTTP APIs
    answer 503 meanwhile)."""
    import threading

    def warm_up() -> None:
        try:
            a.warm_up()
        except AssistantError as e:
            print(f"error: {e}", file=sys.stderr)

    threading.Thread(target=warm_up, name="load-model", daemon=True).start()


def _mcp(args: argparse.Namespace, s: Settings) -> int:
    from .api import mcp  # a one-line error with the install hint when the mcp package is missing

    if not args.http:
        with mcp.stdout_to_stderr():  # stdout is the protocol
            a = _open(s, serving=True)
        _warm_up(a)
        mcp.run_stdio(a)
        return 0
    from .api.auth import Credentials
    from .errors import ConfigError
    from .ui.ports import check_port_free

    if bool(s.auth_user) != bool(s.auth_password):
        raise ConfigError("auth_user and auth_password: set both to require a login, or neither")
    check_port_free(s.host, args.mcp_port)
    a = _open(s, serving=True)
    _warm_up(a)
    credentials = Credentials.of(s.auth_user, s.auth_password, s.api_token)
    print(f"MCP server on http://{s.host}:{args.mcp_port}{mcp.HTTP_PATH}"
          + (" (login required)" if credentials.required else ""), file=sys.stderr, flush=True)
    mcp.http_server(a, s.host, args.mcp_port, credentials).run()
    return 0


COMMANDS = {"index": _index, "search": _search, "ask": _ask, "chat": _chat, "serve": _serve, "mcp": _mcp}


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
