"""The ablation behind the defaults: one line of metrics per configuration, on one question set.

    .venv/bin/python eval/ablate.py --docs documents --questions eval/questions.jsonl \
        '{"chunk_tokens":128,"chunk_overlap":24}' '{"chunk_tokens":200,"chunk_overlap":40,"retrieval":"dense"}'

Each configuration is a JSON object of settings overrides; indexes go to --work (one per chunk setting).
Columns: quote recall@k (a gold quote lies in one of the top k passages, whitespace-normalised), quote
support (a cited sentence and a gold quote contain one another), citation precision by source (cited
documents are gold documents; answerable questions), and abstention precision / recall.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=Path, required=True)
    ap.add_argument("--questions", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("eval/out/ablation"))
    ap.add_argument("configs", nargs="+")
    args = ap.parse_args()

    import numpy as np
    import torch  # noqa: F401

    from assistant.app import Assistant
    from assistant.embed import SentenceTransformerEmbedder
    from assistant.records import Turn
    from assistant.settings import Settings

    def norm(t: str) -> str:
        return " ".join(t.split())

    emb = SentenceTransformerEmbedder()
    qs = [json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines() if line.strip()]
    for cfg in args.configs:
        s = Settings.load(env={}, docs_dir=args.docs, **json.loads(cfg))
        s = s.replace(index_dir=args.work / f"{args.docs.name}-{s.chunk_tokens}-{s.chunk_overlap}")
        a = Assistant.open(s, embedder=emb)
        rec: dict[int, list[bool]] = {k: [] for k in (1, 3, 5, 10)}
        abst, sup, cp = [], [], []
        prev: dict[str, Turn] = {}
        for q in qs:
            hist = [prev[q["follows"]]] if q.get("follows") in prev else []
            hits = a.retriever.search(q["question"], 10, context=hist[-1].question if hist else "")
            ans = a.ask(q["question"], history=hist)
            prev[q["id"]] = Turn(q["question"], ans.text, ans.citations)
            gold = [norm(g) for g in q["gold_quotes"]]
            if q["answerable"]:
                for k in rec:
                    rec[k].append(any(g in norm(h.text) for g in gold for h in hits[:k]))
                sup.append(any(norm(c.quote) in g or g in norm(c.quote) for c in ans.citations for g in gold))
                cp += [c.source in q["gold_sources"] for c in ans.citations]
            abst.append((ans.abstained, not q["answerable"]))
        tp = sum(1 for x, y in abst if x and y)
        p = tp / max(1, sum(x for x, _ in abst))
        r = tp / max(1, sum(y for _, y in abst))
        print(f"{cfg:60} chunks={a.retriever.reader.manifest.chunks:5} "
              + " ".join(f"qr@{k}={np.mean(v):.3f}" for k, v in rec.items())
              + f" support={np.mean(sup):.3f} citeP={np.mean(cp):.3f} abstP={p:.2f} abstR={r:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
