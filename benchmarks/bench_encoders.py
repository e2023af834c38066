"""Encoder backends against fp32 torch in the same run: speed, closeness of the vectors, memory, export time.

    .venv/bin/python benchmarks/bench_encoders.py [--texts 2000] [--no-presets] [--no-sweep] [--json FILE]

Corpus: the faq, tutorial and howto sources of the Python docs, chunked as the index does (128/24 tokens,
at most 256 model word pieces); `--texts` of the chunks are measured, 300 others calibrate int8.

Each backend runs in a process of its own (no shared thread pools; its own peak RSS), all alive at once.
The measured texts are cut into slices and the backends take turns slice by slice, so a change in the
load of this shared machine hits them all alike; a speed is a ratio to torch over the same slices, and
the spread is the range of the per-slice ratios. Quality against torch fp32: mean (and worst) cosine of
each text's vector; overlap@10 of the nearest neighbours of 200 query chunks among all measured chunks
(the query itself left out); how often torch's nearest neighbour is in the backend's top 5.

The sweep compares OpenVINO's settings (performance hint, streams, batch size) on int8 the same way, plus
the latency of one short text (a query). Exports are timed in their own processes: what a user waits for
once per index.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
PYDOCS = Path("/usr/share/doc/python3.11/html/_sources")
MODEL = "all-MiniLM-L6-v2"

# name -> (export folder or None for torch, embedder options)
BACKENDS: dict[str, tuple[str | None, dict]] = {
    "torch fp32 (baseline)": (None, {}),
    "torch fp32, batch 16": (None, {"batch": 16}),
    "openvino fp32": ("fp32", {}),
    "openvino int8": ("int8", {}),
    "openvino fp32 run as bf16": ("fp32", {"inference_precision": "bf16"}),
}
PRESET_ROW = ("openvino int8, preset performance", ("int8-performance", {}))
SWEEP = {  # on the int8 export; "budget" is max_batch_tokens, padded word pieces per inference request
    "LATENCY, batch 64": {"performance_hint": "LATENCY", "max_batch_tokens": None},
    "LATENCY, budget 2048": {"performance_hint": "LATENCY", "max_batch_tokens": 2048},
    "LATENCY, budget 4096 (default)": {"performance_hint": "LATENCY", "max_batch_tokens": 4096},
    "LATENCY, budget 8192": {"performance_hint": "LATENCY", "max_batch_tokens": 8192},
    "THROUGHPUT 2 streams, batch 64": {"performance_hint": "THROUGHPUT", "num_streams": 2, "max_batch_tokens": None},
    "THROUGHPUT 2 streams, budget 2048": {"performance_hint": "THROUGHPUT", "num_streams": 2, "max_batch_tokens": 2048},
    "THROUGHPUT 2 streams, budget 4096": {"performance_hint": "THROUGHPUT", "num_streams": 2, "max_batch_tokens": 4096},
}


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / hz, sum(v[:8]) / hz


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB."""
    with open("/proc/self/statm") as f:
        current = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- the worker processes --------------------------------------------------------------------------------

def worker(args: argparse.Namespace) -> int:
    """Serve commands from stdin, one JSON line each; replies on the real stdout, library chatter to stderr."""
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    texts: list[str] = json.loads(Path(args.texts_file).read_text())
    work = Path(args.workdir)

    def answer(**kw: object) -> None:
        reply.write(json.dumps(kw) + "\n")

    if args.worker == "export":
        from assistant.backends.openvino import export_openvino

        calib = json.loads((work / "calibration.json").read_text())
        t = time.perf_counter()
        export_openvino(MODEL, work / args.name, int8=args.int8, calibration_texts=calib, preset=args.preset)
        answer(seconds=time.perf_counter() - t, rss=rss_mb())
        return 0

    t = time.perf_counter()
    opts = json.loads(args.options)
    embedders = {}
    if args.worker == "torch":
        import torch  # noqa: F401

        from assistant.embed import SentenceTransformerEmbedder

        embedders[""] = (SentenceTransformerEmbedder(MODEL), opts.get("batch", 64))
    else:
        from assistant.backends.openvino import OpenVINOEmbedder

        for key, o in (opts.items() if args.worker == "sweep" else [("", opts)]):
            o = dict(o)
            batch = o.pop("batch", 64)
            embedders[key] = (OpenVINOEmbedder(work / args.export, MODEL, **o), batch)
    for emb, batch in embedders.values():
        emb.embed(texts[:32], batch_size=batch)  # warm-up
    answer(load_seconds=time.perf_counter() - t, rss=rss_mb(), cpu=cpu_seconds(),
           config={k: getattr(e, "config", {}) for k, (e, _) in embedders.items()})
    vectors = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] != "finish":
            emb, batch = embedders[cmd.get("key", "")]
        if cmd["cmd"] == "embed":
            a, b = cmd["slice"]
            t = time.perf_counter()
            vectors[a] = emb.embed(texts[a:b], batch_size=batch)
            answer(seconds=time.perf_counter() - t)
        elif cmd["cmd"] == "latency":
            times = []
            for q in cmd["queries"]:
                t = time.perf_counter()
                emb.embed([q])
                times.append(time.perf_counter() - t)
            answer(times=times)
        elif cmd["cmd"] == "finish":
            if vectors and args.worker != "sweep":
                import numpy as np

                np.save(work / f"{args.name}.npy", np.concatenate([vectors[a] for a in sorted(vectors)]))
            answer(rss=rss_mb(), cpu=cpu_seconds())
            return 0
    return 1


class Worker:
    def __init__(self, kind: str, name: str, work: Path, log, **extra: object) -> None:
        cmd = [sys.executable, __file__, "--worker", kind, "--name", name, "--workdir", str(work),
               "--texts-file", str(work / "texts.json")]
        for k, v in extra.items():
            if v is True:
                cmd.append(f"--{k}")
            elif v not in (None, False):
                cmd += [f"--{k}", v if isinstance(v, str) else json.dumps(v)]
        self.name = name
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                     bufsize=1)

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.name} died (exit {self.proc.wait()}); see its log")
        return json.loads(line)

    def ask(self, **cmd: object) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.read()


# ---- the parent ------------------------------------------------------------------------------------------

def corpus(limit: int, calibration: int, seed: int) -> tuple[list[str], list[str]]:
    import numpy as np
    import torch  # noqa: F401

    from assistant.chunk import chunk_document, embedding_text
    from assistant.embed import SentenceTransformerEmbedder
    from assistant.errors import DocumentError
    from assistant.load import load_file, scan_folder

    count = SentenceTransformerEmbedder(MODEL).count_tokens
    texts = []
    for sub in ("faq", "tutorial", "howto"):
        files, _ = scan_folder(PYDOCS / sub)
        for f in sorted(files, key=lambda f: f.rel):
            if not f.rel.endswith(".rst.txt"):
                continue
            try:
                doc = load_file(f)
            except DocumentError:
                continue
            for c in chunk_document(doc, tokens=128, overlap=24, max_model_tokens=256, count_model=count):
                texts.append(embedding_text(doc, c))
    perm = np.random.default_rng(seed).permutation(len(texts))
    n = min(limit, len(texts) - calibration)
    return [texts[i] for i in perm[:n]], [texts[i] for i in perm[n:n + calibration]]


def quality(ref, vec, queries: int) -> dict[str, float]:
    import numpy as np

    cos = (ref * vec).sum(axis=1)
    def neighbours(v, k):
        sims = v[:queries] @ v.T
        sims[np.arange(queries), np.arange(queries)] = -np.inf  # the query itself
        return np.argsort(-sims, axis=1)[:, :k]
    r10, v10 = neighbours(ref, 10), neighbours(vec, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(r10, v10, strict=True)])
    top1 = np.mean([r10[i, 0] in v10[i, :5] for i in range(queries)])
    return {"cos_mean": float(cos.mean()), "cos_min": float(cos.min()), "overlap10": float(overlap),
            "top1_in_top5": float(top1)}


def rounds(workers: dict[str, tuple[Worker, str]], n: int, slices: int) -> dict[str, list[float]]:
    """Each worker embeds slice 1, then each slice 2, ...; the order of the workers rotates per slice."""
    bounds = [(i * n // slices, (i + 1) * n // slices) for i in range(slices)]
    names = list(workers)
    times: dict[str, list[float]] = {k: [] for k in names}
    for r, (a, b) in enumerate(bounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            w, key = workers[name]
            times[name].append(w.ask(cmd="embed", slice=[a, b], key=key)["seconds"])
        print(f"  slice {r + 1}/{slices} done", file=sys.stderr)
    return times


def latencies(workers: dict[str, tuple[Worker, str]], queries: list[str]) -> dict[str, list[float]]:
    """Seconds to embed one query, query by query, the workers taking turns (as `rounds` does)."""
    names = list(workers)
    out: dict[str, list[float]] = {k: [] for k in names}
    for r, q in enumerate(queries):
        for name in names[r % len(names):] + names[:r % len(names)]:
            w, key = workers[name]
            out[name] += w.ask(cmd="latency", queries=[q], key=key)["times"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--calibration", type=int, default=300)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-presets", action="store_true", help="skip the int8 export with NNCF's performance preset")
    ap.add_argument("--sweep-texts", type=int, default=600)
    ap.add_argument("--no-sweep", action="store_true", help="skip the OpenVINO settings sweep")
    ap.add_argument("--json", type=Path, help="write the results here too")
    # worker side
    ap.add_argument("--worker", choices=["torch", "openvino", "sweep", "export"])
    ap.add_argument("--name", default="")
    ap.add_argument("--workdir")
    ap.add_argument("--texts-file")
    ap.add_argument("--export")
    ap.add_argument("--options", default="{}")
    ap.add_argument("--int8", action="store_true")
    ap.add_argument("--preset")
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    t_start = time.perf_counter()
    texts, calib = corpus(args.texts, args.calibration, args.seed)
    print(f"corpus: {len(texts)} measured chunks, {len(calib)} disjoint calibration chunks "
          f"({time.perf_counter() - t_start:.0f} s)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-encoders-") as tmp:
        work = Path(tmp)
        (work / "texts.json").write_text(json.dumps(texts))
        (work / "calibration.json").write_text(json.dumps(calib))
        with open(work / "workers.log", "w") as log:
            try:
                results = run(args, texts, calib, work, log)
            except BaseException:
                log.flush()
                sys.stderr.write((work / "workers.log").read_text()[-4000:])
                raise
    results["total_seconds"] = time.perf_counter() - t_start
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def run(args: argparse.Namespace, texts: list[str], calib: list[str], work: Path, log) -> dict:
    import numpy as np

    results: dict = {"texts": len(texts), "calibration": len(calib), "queries": args.queries}
    backends = dict(BACKENDS)
    exports = {"fp32": (False, None), "int8": (True, None)}
    if not args.no_presets:
        exports["int8-performance"] = (True, "performance")
        backends[PRESET_ROW[0]] = PRESET_ROW[1]
    results["exports"] = {}
    for name, (int8, preset) in exports.items():
        print(f"export {name}", file=sys.stderr)
        r = Worker("export", name, work, log, int8=int8, preset=preset).read()
        results["exports"][name] = {"seconds": r["seconds"], "peak_rss_mb": r["rss"][1]}

    workers: dict[str, tuple[Worker, str]] = {}
    for i, (name, (export, opts)) in enumerate(backends.items()):
        kind = "torch" if export is None else "openvino"
        workers[name] = (Worker(kind, f"b{i}", work, log, export=export, options=opts), "")
    loaded = {name: w.read() for name, (w, _) in workers.items()}
    print("encoding", file=sys.stderr)
    busy0, total0, mine0 = *machine_busy(), cpu_seconds()
    times = rounds(workers, len(texts), args.slices)
    queries = [t.split("\n", 1)[-1][:80] for t in texts[:100]]  # a query-sized piece of text
    latency = latencies(workers, queries)
    finished = {name: w.ask(cmd="finish") for name, (w, _) in workers.items()}
    busy1, total1 = machine_busy()
    ours = cpu_seconds() - mine0 + sum(finished[k]["cpu"] - loaded[k]["cpu"] for k in workers)
    results["other_cpu_share"] = max(0.0, (busy1 - busy0 - ours) / (total1 - total0))
    base = next(iter(backends))
    ref = np.load(work / f"{workers[base][0].name}.npy")
    rows = {}
    for name, (w, _) in workers.items():
        per_slice = [b / t for b, t in zip(times[base], times[name], strict=True)]
        rows[name] = {"texts_per_s": len(texts) / sum(times[name]),
                      "ratio": sum(times[base]) / sum(times[name]),
                      "ratio_min": min(per_slice), "ratio_max": max(per_slice),
                      "query_p50_ms": 1000 * float(np.median(latency[name])),
                      "rss_loaded_mb": loaded[name]["rss"][0], "peak_rss_load_mb": loaded[name]["rss"][1],
                      "peak_rss_mb": finished[name]["rss"][1],
                      "config": loaded[name]["config"].get(""),
                      **quality(ref, np.load(work / f"{w.name}.npy"), min(args.queries, len(texts)))}
    results["backends"] = rows

    if not args.no_sweep:
        print("sweep", file=sys.stderr)
        sw = Worker("sweep", "sweep", work, log, export="int8", options=SWEEP)
        sw.read()
        sub = min(len(texts), args.sweep_texts)
        st = rounds({k: (sw, k) for k in SWEEP}, sub, 4)
        lat = latencies({k: (sw, k) for k in SWEEP}, queries)
        sw.ask(cmd="finish")
        first = next(iter(SWEEP))
        results["sweep"] = {k: {"texts_per_s": sub / sum(st[k]), "vs_first": sum(st[first]) / sum(st[k]),
                                "query_p50_ms": 1000 * float(np.median(lat[k]))} for k in SWEEP}
    return results


def report(r: dict) -> None:
    print(f"{r['texts']} Python-docs chunks (faq, tutorial, howto; 128/24 tokens); int8 calibrated on "
          f"{r['calibration']} other chunks; neighbours of {r['queries']} query chunks among all")
    print()
    head = (f"{'backend':34} {'texts/s':>8} {'vs torch':>8} {'per-slice':>11} {'query p50':>9} "
            f"{'cos mean':>8} {'cos min':>7} {'ovl@10':>6} {'top1@5':>6} {'RSS MB':>6} {'peak':>5}/{'load':<5}")
    print(head)
    print("-" * len(head))
    for name, x in r["backends"].items():
        print(f"{name:34} {x['texts_per_s']:8.1f} {x['ratio']:7.2f}x {x['ratio_min']:5.2f}-{x['ratio_max']:<5.2f} "
              f"{x['query_p50_ms']:7.1f}ms {x['cos_mean']:8.4f} {x['cos_min']:7.4f} {x['overlap10']:6.3f} "
              f"{x['top1_in_top5']:6.3f} {x['rss_loaded_mb']:6.0f} "
              f"{x['peak_rss_mb']:5.0f}/{x['peak_rss_load_mb']:<5.0f}")
    print()
    for name, x in r["backends"].items():
        if x["config"]:
            print(f"{name}: {x['config']}")
    print()
    for name, x in r["exports"].items():
        print(f"export {name:18} {x['seconds']:6.1f} s   peak RSS {x['peak_rss_mb']:5.0f} MB")
    if "sweep" in r:
        print()
        print(f"{'OpenVINO settings (int8)':34} {'texts/s':>8} {'vs first':>8} {'query p50':>9}")
        for name, x in r["sweep"].items():
            print(f"{name:34} {x['texts_per_s']:8.1f} {x['vs_first']:7.2f}x {x['query_p50_ms']:7.1f}ms")
    print()
    print("RSS: resident after loading and a warm-up; peak over the whole run / peak by the end of loading.")
    print(f"other processes used {100 * r['other_cpu_share']:.0f} % of the machine's CPU while encoding.")
    print(f"total {r['total_seconds']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
