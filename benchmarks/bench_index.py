"""Indexing throughput against the bare model: build an index of a folder, then encode the very same chunk
texts with SentenceTransformer.encode alone, in the same process, and print the pipeline's overhead.

    .venv/bin/python benchmarks/bench_index.py /usr/share/doc/python3.11/html/_sources
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("docs", type=Path)
    ap.add_argument("--chunk-tokens", type=int)
    ap.add_argument("--chunk-overlap", type=int)
    args = ap.parse_args()

    import torch  # noqa: F401

    from assistant.chunk import embedding_text
    from assistant.embed import SentenceTransformerEmbedder
    from assistant.index import build_index, open_index
    from assistant.settings import Settings

    emb = SentenceTransformerEmbedder()
    emb.embed(["warm up"] * 8)
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings.load(env={}, docs_dir=args.docs, index_dir=Path(tmp) / "index",
                          chunk_tokens=args.chunk_tokens, chunk_overlap=args.chunk_overlap)
        t = time.perf_counter()
        report = build_index(s, embedder=emb)
        build = time.perf_counter() - t
        reader = open_index(s.index_dir)
        texts = [embedding_text(reader.documents[c.source], c) for c in reader.chunks]
        longest = max(emb.count_tokens(texts), default=0)
        t = time.perf_counter()
        again = build_index(s, embedder=emb)
        noop = time.perf_counter() - t
    t = time.perf_counter()
    emb._model.encode(texts, batch_size=64, normalize_embeddings=True)
    bare = time.perf_counter() - t
    print(f"corpus              {args.docs}")
    print(f"documents           {len(report.added)} indexed, {len(report.skipped)} skipped")
    for sk in report.skipped:
        print(f"  skipped {sk.rel}: {sk.reason}")
    print(f"chunks              {report.chunks}")
    print(f"build               {build:8.2f} s   ({report.chunks / build:7.1f} chunks/s)")
    print("  stages            " + ", ".join(f"{k} {v:.2f} s" for k, v in report.timings.items()))
    print(f"longest chunk       {longest} word pieces with its header (model limit {emb.max_tokens})")
    print(f"bare encode         {bare:8.2f} s   ({len(texts) / bare:7.1f} chunks/s)")
    print(f"overhead            {100 * (build - bare) / bare:8.1f} %  (build / bare = {build / bare:.3f})")
    # The encode speed drifts between two long runs; the stages that are not encoding do not.
    other = build - report.timings.get("embed", 0.0)
    print(f"  beyond encoding   {other:8.2f} s   ({100 * other / bare:.1f} % of bare encode)")
    print(f"no-change rebuild   {noop:8.3f} s   ({again.embedded} embedded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
