"""Warm query latency: `search` and extractive `ask` next to the bare baseline (encode the query, search
FAISS) for the same queries in the same run. p50/p95 in milliseconds. The process is warm (one warm-up
question); the first round's asks are questions new to it (their passages' sentences not in memory), the
later rounds' asks repeat them.

    .venv/bin/python benchmarks/bench_query.py                 # the articles in documents/
    .venv/bin/python benchmarks/bench_query.py --docs DIR --questions FILE.jsonl [--index-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=Path, default=ROOT / "documents")
    ap.add_argument("--questions", type=Path, default=ROOT / "eval" / "questions.jsonl")
    ap.add_argument("--index-dir", type=Path, default=None,
                    help="an index of --docs to use (built or updated if needed); default: a fresh temp one")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    import torch  # noqa: F401  (before faiss)

    from assistant.app import Assistant
    from assistant.settings import Settings

    questions = [json.loads(line)["question"] for line in args.questions.read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings.load(env={}, docs_dir=args.docs, index_dir=args.index_dir or Path(tmp) / "index")
        a = Assistant.open(s)  # the default backend
        emb = a.retriever.embedder
        import faiss
        import numpy as np

        store = faiss.IndexFlatIP(emb.dimension)  # the bare baseline: every vector in one flat index in RAM
        store.add(np.concatenate([np.asarray(v) for seg in a.retriever.reader.segments for _, v in seg.parts]))
        recent = getattr(a.retriever, "_recent", None)  # the last few query vectors, remembered

        def forget() -> None:
            if recent is not None:
                recent.clear()

        a.ask("warm-up: what is this about?")  # the process is warm; each question below is new to it
        bare, search, first, again = [], [], [], []
        for r in range(args.rounds):
            for q in questions:
                t = time.perf_counter()
                v = emb.embed([q])
                store.search(v, s.k)
                bare.append((time.perf_counter() - t) * 1000)
                forget()  # each call below encodes its query, as a lone request does
                t = time.perf_counter()
                a.search(q)
                search.append((time.perf_counter() - t) * 1000)
                forget()
                t = time.perf_counter()
                a.ask(q)
                (first if r == 0 else again).append((time.perf_counter() - t) * 1000)
    chunks = a.retriever.reader.manifest.chunks
    stored = getattr(s, "sentence_vectors", False)
    print(f"{len(questions)} questions x {args.rounds} rounds over {args.docs} ({chunks} chunks, "
          f"backend {getattr(emb, 'backend', 'torch')}, stored sentence vectors: {stored})")
    print(f"{'':30}{'p50 ms':>10}{'p95 ms':>10}{'p50 / bare':>12}")
    b50 = statistics.median(bare)
    for name, xs in (("bare encode+FAISS", bare), ("search (hybrid)", search),
                     ("ask, question new to process", first), ("ask, question asked before", again)):
        if xs:
            print(f"{name:30}{statistics.median(xs):10.2f}{pct(xs, 95):10.2f}{statistics.median(xs) / b50:12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
