"""Indexing against the bare model, per folder, in one run: the time until the first question is answered
(the index is searchable lexically as soon as it is chunked), the full build time (all dense vectors in),
and bare fp32 `SentenceTransformer.encode` of the very same texts in the same process, with the ratio;
the full build includes the quotable sentences' vectors (sentvec.py), which come after the chunk vectors.

    .venv/bin/python benchmarks/bench_index.py /tmp/pydocs /usr/share/doc/postgresql-doc-15/html \
        [--backend openvino-int8] [--question "What does work_mem do?"]

The build runs as `assistant serve` or `ask` would on a new folder: chunk everything, publish, answer,
fill the vectors in. Time is wall-clock on this machine: compare the ratio, not the seconds.
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


def bench(folder: Path, backend: str, question: str, bare_model) -> dict[str, float]:  # noqa: ANN001
    from assistant.app import Assistant
    from assistant.chunk import embedding_text
    from assistant.index import layout, open_index
    from assistant.index.build import fill_vectors
    from assistant.index.sentvec import fill_sentences
    from assistant.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        s = Settings.load(env={}, docs_dir=folder, index_dir=Path(tmp) / "index", backend=backend)
        t0 = time.perf_counter()
        a = Assistant.open(s, background=False)
        answer = a.ask(question)
        first = time.perf_counter() - t0
        report = a.last_build
        filled = fill_vectors(s.replace(sentence_vectors=False), a.retriever.embedder)
        vectors_in = time.perf_counter() - t0
        with layout.writer_lock(s.index_dir):  # what a build does next: the quotable sentences' vectors
            sentences, sentences_embedded = fill_sentences(s, a.retriever.embedder)
        full = time.perf_counter() - t0
        reader = open_index(s.index_dir)
        texts = [embedding_text(reader.documents[c.source], c) for c, _ in reader.iter_chunks()]
        unique = list(dict.fromkeys(texts))
    t = time.perf_counter()
    bare_model.encode(unique, batch_size=64, normalize_embeddings=True)
    bare = time.perf_counter() - t
    print(f"corpus              {folder}  (backend {backend})")
    print(f"documents           {len(report.added)} indexed, {len(report.skipped)} skipped; chunks {report.chunks:,}"
          f" ({len(unique):,} distinct texts)")
    print(f"first answer        {first:8.1f} s   (lexical: {answer.notices[0] if answer.notices else 'no notice'})")
    print(f"chunk vectors in    {vectors_in:8.1f} s   ({filled.embedded:,} embedded after the first answer)")
    print(f"full build          {full:8.1f} s   (then {sentences_embedded:,} of {sentences:,} quotable sentences "
          "embedded)")
    print(f"bare fp32 encode    {bare:8.1f} s   (SentenceTransformer.encode of the same distinct chunk texts)")
    print(f"chunks in / bare    {vectors_in / bare:8.3f}")
    print(f"full / bare         {full / bare:8.3f}")
    print()
    return {"first": first, "vectors": vectors_in, "full": full, "bare": bare}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", type=Path, nargs="+")
    ap.add_argument("--backend", default=None, help="default: the settings' default")
    ap.add_argument("--question", default="What does this documentation describe?")
    args = ap.parse_args()

    import torch  # noqa: F401  (before faiss)

    from assistant.embed import SentenceTransformerEmbedder
    from assistant.settings import Settings

    backend = args.backend or Settings.load(env={}).backend
    bare = SentenceTransformerEmbedder()
    bare.embed(["warm up"] * 8)
    for folder in args.folders:
        bench(folder, backend, args.question, bare._model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
