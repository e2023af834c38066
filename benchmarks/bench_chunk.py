"""Loading and chunking time against input size: generated documents at 1x, 8x and 32x, so that the ratios
show the growth (linear: about 8 and 32).

    .venv/bin/python benchmarks/bench_chunk.py [--base-kb 128] [--sizes 1 8 32]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable


def _sentence(i: int) -> str:
    if i % 3 == 0:
        return f"Part {i} has {i % 11} items, i.e. several."
    return f"Sentence {i} says e.g. something about topic {i % 7}. then it goes on."


def markdown(kb: int) -> bytes:
    """Headings of three levels, paragraphs, numbered lists."""
    out: list[str] = ["# Generated guide\n"]
    size, i = 0, 0
    while size < kb * 1024:
        piece = (f"\n## Section {i}\n\n{' '.join(_sentence(i + j) for j in range(4))}\n\n1. First step.\n"
                 f"2. Second step.\n\n### Detail {i}\n\n{' '.join(_sentence(i + j) for j in range(3))}\n")
        out.append(piece)
        size += len(piece)
        i += 1
    return "".join(out).encode()


def one_line(kb: int) -> bytes:
    """Plain text without a single line break."""
    out: list[str] = []
    size, i = 0, 0
    while size < kb * 1024:
        s = _sentence(i) + " "
        out.append(s)
        size += len(s)
        i += 1
    return "".join(out).encode()


def paragraph(kb: int) -> bytes:
    """One paragraph (line breaks, no blank line) of lowercase sentences that never end one."""
    out: list[str] = []
    size, i = 0, 0
    while size < kb * 1024:
        s = f"item {i} is listed here. see also item {i + 1}.\n"
        out.append(s)
        size += len(s)
        i += 1
    return "".join(out).encode()


def blob(kb: int) -> bytes:
    """A huge whitespace-free word, as in an inlined base64 image."""
    unit = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk+/"
    return ("Data: " + unit * (kb * 1024 // len(unit)) + ".\n").encode()


def html(kb: int) -> bytes:
    """Headings, definition lists, scripts and a long ordered list."""
    out: list[str] = ["<html><head><title>Generated</title></head><body><main><h1>Guide</h1>"]
    size, i = 0, 0
    while size < kb * 1024:
        piece = (f"<h2>Section {i}</h2><p>{' '.join(_sentence(i + j) for j in range(3))}</p>"
                 f"<dl><dt>term{i} (integer)</dt><dd>Defines {i}.</dd></dl><script>var x = {i};</script>"
                 f"<ol><li>One.</li><li>Two.</li></ol>")
        out.append(piece)
        size += len(piece)
        i += 1
    out.append("<ol>" + "".join(f"<li>Item {k}.</li>" for k in range(i)) + "</ol></main></body></html>")
    return "".join(out).encode()


INPUTS: dict[str, tuple[str, Callable[[int], bytes]]] = {
    "markdown": ("guide.md", markdown), "one line": ("line.txt", one_line),
    "paragraph": ("para.txt", paragraph), "blob": ("blob.txt", blob), "html": ("page.html", html),
}


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-kb", type=int, default=128, help="size of the 1x input")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--chunk-tokens", type=int, default=128)
    ap.add_argument("--chunk-overlap", type=int, default=24)
    args = ap.parse_args()

    from assistant.chunk import chunk_document
    from assistant.embed import HashEmbedder
    from assistant.load import load_bytes

    count = HashEmbedder().count_tokens  # a stand-in for the model's tokenizer: no model is loaded
    chunk_document(load_bytes("warm.md", markdown(4)), tokens=8, overlap=0)  # tiktoken's encoding
    print(f"chunks of {args.chunk_tokens}/{args.chunk_overlap} tokens, model limit 256 (HashEmbedder count)")
    print(f"{'input':<10} {'size':>6} {'MB':>7} {'load s':>8} {'chunk s':>8} {'chunks':>7} "
          f"{'load x':>7} {'chunk x':>8}")
    for label, (name, make) in INPUTS.items():
        first: tuple[float, float] | None = None
        for n in args.sizes:
            data = make(args.base_kb * n)
            repeat = 3 if n == args.sizes[0] else 1
            load = _best(lambda: load_bytes(name, data), repeat)  # noqa: B023
            doc = load_bytes(name, data)
            chunks: list = []

            def run() -> None:
                chunks[:] = chunk_document(doc, tokens=args.chunk_tokens, overlap=args.chunk_overlap,  # noqa: B023
                                           max_model_tokens=256, count_model=count)

            chunk = _best(run, repeat)
            first = first or (load, chunk)
            print(f"{label:<10} {f'{n}x':>6} {len(data) / 1e6:7.2f} {load:8.3f} {chunk:8.3f} {len(chunks):7d} "
                  f"{load / first[0]:7.1f} {chunk / first[1]:8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
