"""What the REST API adds to a search: `POST /v1/search` on a running server (launch(), as `assistant serve`
starts it, over loopback with a keep-alive httpx client) next to the in-process `Assistant.search` of the same
queries in the same run, alternating query by query. Two clients: httpx, and the standard library's
http.client (a minimal keep-alive client, so the client library's own cost is mostly left out); without a
login, and with a bearer token (the login check on every request). p50/p95 in milliseconds; "added" is the
median (and 95th percentile) of the per-query differences REST - in-process.

    .venv/bin/python benchmarks/bench_rest.py                  # the articles' questions, 10 rounds
    .venv/bin/python benchmarks/bench_rest.py --rounds 20 --k 10
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(a: Any, port: int, token: str, questions: list[str], rounds: int, k: int
            ) -> list[tuple[str, list[float], list[float]]]:
    """(client, in-process ms, REST ms) per client; every REST request right after the same query in-process."""
    import httpx

    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30)
    lean = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def with_httpx(body: bytes) -> None:
        r = client.post("/v1/search", content=body)
        assert r.status_code == 200, r.text
        r.json()

    def with_http_client(body: bytes) -> None:
        lean.request("POST", "/v1/search", body=body, headers=headers)
        r = lean.getresponse()
        data = r.read()
        assert r.status == 200, data
        json.loads(data)

    clients = {"httpx": with_httpx, "http.client": with_http_client}
    for q in questions:  # warm every path
        a.search(q, k=k)
        for call in clients.values():
            call(json.dumps({"query": q, "k": k}).encode())
    local: dict[str, list[float]] = {name: [] for name in clients}
    rest: dict[str, list[float]] = {name: [] for name in clients}
    try:
        for _ in range(rounds):
            for q in questions:
                body = json.dumps({"query": q, "k": k}).encode()
                for name, call in clients.items():
                    t = time.perf_counter()
                    a.search(q, k=k)
                    local[name].append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    call(body)
                    rest[name].append((time.perf_counter() - t) * 1000)
    finally:
        client.close()
        lean.close()
    return [(name, local[name], rest[name]) for name in clients]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=Path, default=ROOT / "documents")
    ap.add_argument("--questions", type=Path, default=ROOT / "eval" / "questions.jsonl")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--k", type=int, default=5)
    args = ap.parse_args()
    if not 1 <= args.rounds <= 100:
        ap.error("--rounds: between 1 and 100")

    import torch  # noqa: F401  (before faiss)

    from assistant.app import Assistant
    from assistant.embed import SentenceTransformerEmbedder
    from assistant.settings import Settings
    from assistant.ui.app import launch

    questions = [json.loads(line)["question"] for line in args.questions.read_text().splitlines() if line.strip()]
    emb = SentenceTransformerEmbedder()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings.load(env={}, docs_dir=args.docs, index_dir=Path(tmp) / "index")
        base = Assistant.open(s, embedder=emb)
        for label, token in (("no login", ""), ("bearer token", TOKEN)):
            a = Assistant(s.replace(api_token=token), base.retriever)
            demo = launch(a, host="127.0.0.1", port=free_port(), block=False, quiet=True)
            try:
                for name, local, rest in measure(a, demo.server_port, token, questions, args.rounds, args.k):
                    rows.append((f"{name}, {label}", local, rest))
            finally:
                demo.close(verbose=False)
    chunks = base.retriever.reader.manifest.chunks
    print(f"{len(questions)} questions x {args.rounds} rounds, k={args.k}, over {args.docs} ({chunks} chunks)")
    print(f"{'':44}{'p50 ms':>9}{'p95 ms':>9}{'added p50':>11}{'added p95':>11}")
    for label, local, rest in rows:
        diffs = [r - x for r, x in zip(rest, local, strict=True)]
        print(f"{'in-process Assistant.search':44}{statistics.median(local):9.2f}{pct(local, 95):9.2f}")
        print(f"{'POST /v1/search (' + label + ')':44}{statistics.median(rest):9.2f}{pct(rest, 95):9.2f}"
              f"{statistics.median(diffs):11.2f}{pct(diffs, 95):11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
