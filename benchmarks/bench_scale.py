"""The index at scale: 30k, 300k and 1M chunks of real text, with the deterministic fake embedder so that
encoding is left out. For each size it prints the build time beyond encoding, the index bytes on disk, the
open time, RSS after open and after 100 queries, search p50/p95, and the time and bytes written to add,
change and remove one file.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 30000,300000,1000000] [--work /tmp/bench_scale]
        [--json results.json]

Corpus: the Python docs' reST sources (/usr/share/doc/python3.11/html/_sources) and the PostgreSQL manual
(/usr/share/doc/postgresql-doc-15/html), copied into replica folders r000/, r001/, ... of a pool under
--work. Each replica is perturbed lightly so that its chunks differ from every other replica's: the word
ReplicaNNN is added at the end of every reST paragraph and HTML paragraph, listing, cell, list item and
block, and wherever 300 characters of text passed without one (a line end, or a grid-table cell's
padding); never inside a tag, a heading, a title, a <dt> term, a directive, a field or a `::` line, so the
headings are those of the original files. About 4 % of the chunks (short ones: index entries, lists of
names, directive lines) still carry no marker and repeat across replicas; the calibration says how many.
A calibration build of r000 (then r001 added) gives the chunks of each file; a size takes whole replicas,
then the first files of the next one (Python and PostgreSQL files alternating), until the estimate
reaches it. A size's documents folder holds hard links into the pool.

Each size runs in its own process (`--one SIZE`), so memory numbers do not carry over:

* vectors: a deterministic fake embedder (384-d, MiniLM's size) so encoding is left out; by default real
  MiniLM vectors of these corpora drawn by a hash of each text, plus noise (fake_embedder: why not
  HashEmbedder's bag-of-words vectors, still there as --vectors hash).
* build: `build_index` from nothing with the fake embedder and
  progressive_min_chunks=10**9 (everything is embedded inside the build). The texts the build gave the
  embedder are recorded; afterwards a fresh fake embedder embeds the same texts in the same slices in the
  same process, and that time is subtracted from the build's: "build s beyond encoding". The time spent
  inside the embedder during the build is reported beside it as a check.
* disk: du (allocated blocks) of the index folder without the embedding cache (embeddings.sqlite*),
  which is reported separately.
* open: `Retriever.open` in 3 fresh processes (numpy, faiss and the package imported before the clock
  starts); the median open time and median RSS (VmRSS) right after it. The last of them then runs 10
  warm-up queries and 100 timed `search(q, k=5)` (the questions of eval/pydocs_questions.jsonl and
  eval/pgdocs_questions.jsonl, alternating, cycled) and reads RSS again.
* one file, after that: a copy of a file of the last replica (the one with the median number of chunks)
  is added under rNNN/added/, changed (one sentence inserted in its middle paragraph) and removed, with
  an incremental `build_index` each (then the same three naming the file: `build_index(paths=[it])`, no
  folder scan); wall time, bytes written by the process (write_bytes of
  /proc/self/io: what reached the page cache for storage, the "MB" of the table; wchar, bytes passed to
  write(2), is in the JSON) and growth of the index folder.

* side by side, at the end: every size's index open in one process and the same 100 queries run on each
  in turn, so that a shared machine's load falls on all sizes alike; the ratio of the p50s is the scaling
  number (the per-size p50s above come from runs minutes apart).

The parent prints a Markdown table at the end (and writes --json). A size that fails gets its error in its
row and the next size runs. Wall-clock on a shared 2-core machine: compare sizes, not machines.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {  # name in a replica -> (folder, file suffix)
    "python": (Path("/usr/share/doc/python3.11/html/_sources"), ".txt"),
    "postgresql": (Path("/usr/share/doc/postgresql-doc-15/html"), ".html"),
}
QUESTIONS = [ROOT / "eval" / "pydocs_questions.jsonl", ROOT / "eval" / "pgdocs_questions.jsonl"]
DIMENSION = 384
PERTURB_VERSION = "3"  # bump when the perturbation changes: the pool and the calibration are made again
CACHE_PREFIX = "embeddings.sqlite"
MB = 1024 * 1024


# --- corpus --------------------------------------------------------------------------------------------

_PUNCT_LINE = re.compile(r"([^\w\s])\1+")  # a reST underline or overline
_HTML_END = re.compile(r"</(p|pre|td|li|dd|div)\s*>", re.IGNORECASE)
_HEADING = re.compile(r"</?(h[1-6]|title|dt|th|caption)(\s[^>]*)?>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
EVERY = 300  # characters of text between two markers at most (a chunk is about 128 tokens, 500 characters)


def marker(replica: int) -> str:
    return f"Replica{replica:03d}"


def perturb_rst(text: str, word: str) -> str:
    """`word.` after the last line of every paragraph, and after a line whenever EVERY characters passed
    without one (so a chunk inside a long paragraph or code block gets one too). Headings, underlines,
    directives, fields and `::` lines are left alone, and a grid-table row gets `word` in a cell's padding
    (its width unchanged), so the reST stays valid."""
    lines = text.split("\n")
    since = 0
    for i, line in enumerate(lines):
        s = line.strip()
        since += len(s)
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if s.startswith("|") and since >= EVERY:
            m = re.search(rf"(?<=\S)({' ' * (len(word) + 2)} *)\|", line)
            if m:
                lines[i] = f"{line[:m.start(1)]} {word}{m.group(1)[len(word) + 1:]}{line[m.end(1):]}"
                since = 0
            continue
        if (not s or _PUNCT_LINE.fullmatch(s) or s.startswith(("..", ":", "+")) or s.endswith(("::", "\\"))
                or (nxt and _PUNCT_LINE.fullmatch(nxt))):
            continue
        if not nxt or since >= EVERY:
            lines[i] = f"{line} {word}."
            since = 0
    return "\n".join(lines)


def perturb_html(text: str, word: str) -> str:
    """` word.` in the text (never inside a tag, a heading or the title) at the end of every paragraph,
    listing, cell, list item and block, and at the end of a line or of a text run whenever EVERY
    characters of text passed without one (lists, tables, long listings)."""
    out: list[str] = []
    since, pos, heading = 0, 0, False
    for m in _TAG.finditer(text):
        run, tag = text[pos:m.start()], m.group(0)
        if run.strip() and not heading:
            pieces = run.split("\n")
            for j, piece in enumerate(pieces):
                since += len(piece.strip())
                if since >= EVERY and piece.strip():
                    pieces[j] = f"{piece} {word}."
                    since = 0
            run = "\n".join(pieces)
        if since and not heading and _HTML_END.fullmatch(tag):
            run += f" {word}."
            since = 0
        if _HEADING.fullmatch(tag):
            heading = not tag.startswith("</")
        out += [run, tag]
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def perturb(rel: str, text: str, word: str) -> str:
    return perturb_html(text, word) if rel.endswith(".html") else perturb_rst(text, word)


def source_files() -> list[str]:
    """Relative paths `python/...` and `postgresql/...`, alternating, each source in sorted order."""
    lists = []
    for name, (folder, suffix) in SOURCES.items():
        if not folder.is_dir():
            raise SystemExit(f"error: {folder}: missing (apt-get install python3.11-doc postgresql-doc-15)")
        lists.append([f"{name}/{p.relative_to(folder).as_posix()}" for p in sorted(folder.rglob(f"*{suffix}"))
                      if p.is_file()])
    out: list[str] = []
    for i in range(max(len(x) for x in lists)):
        out.extend(x[i] for x in lists if i < len(x))
    return out


def source_path(rel: str) -> Path:
    name, rest = rel.split("/", 1)
    return SOURCES[name][0] / rest


def ensure_replica(work: Path, replica: int, files: list[str]) -> Path:
    """The pool's replica folder, written once (and again when the perturbation changed)."""
    folder = work / "pool" / f"r{replica:03d}"
    stamp = folder / ".complete"
    if stamp.is_file() and stamp.read_text() == PERTURB_VERSION:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    word = marker(replica)
    for rel in files:
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = source_path(rel).read_text(encoding="utf-8", errors="surrogateescape")
        dest.write_text(perturb(rel, text, word), encoding="utf-8", errors="surrogateescape")
    stamp.write_text(PERTURB_VERSION)
    return folder


def link_docs(work: Path, docs: Path, plan: list[tuple[int, str]], files: list[str]) -> None:
    """`docs` holds hard links (copies where linking fails) to the pool files of `plan`."""
    shutil.rmtree(docs, ignore_errors=True)
    for replica in sorted({r for r, _ in plan}):
        ensure_replica(work, replica, files)
    for replica, rel in plan:
        src = work / "pool" / f"r{replica:03d}" / rel
        dest = docs / f"r{replica:03d}" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dest)
        except OSError:
            shutil.copyfile(src, dest)


def plan_for(size: int, per_file: dict[str, int], files: list[str]) -> list[tuple[int, str]]:
    """Whole replicas, then the first files of the next, until the chunk estimate reaches `size`."""
    plan: list[tuple[int, str]] = []
    total, replica = 0, 0
    while total < size:
        for rel in files:
            plan.append((replica, rel))
            total += per_file.get(rel, 0)
            if total >= size:
                break
        replica += 1
    return plan


# --- measuring -----------------------------------------------------------------------------------------


def rss_mb() -> float:
    return _status("VmRSS") / 1024


def peak_mb() -> float:
    return _status("VmHWM") / 1024


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def io_counters() -> dict[str, int]:
    try:
        lines = Path("/proc/self/io").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v) for k, v in (line.split(": ") for line in lines)}


def du(folder: Path, *, cache: bool | None = None) -> int:
    """Allocated bytes under `folder`, like du: without the embedding cache (cache=False), only the cache
    (True), or everything (None)."""
    total = 0
    for dirpath, _, names in os.walk(folder):
        for n in names:
            is_cache = n.startswith(CACHE_PREFIX)
            if cache is None or cache == is_cache:
                with contextlib.suppress(FileNotFoundError):  # a file removed meanwhile
                    total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
    return total


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def questions(n: int) -> list[str]:
    lists = [[json.loads(line)["question"] for line in f.read_text().splitlines() if line.strip()]
             for f in QUESTIONS]
    mixed = [q for i in range(max(map(len, lists))) for x in lists if i < len(x) for q in [x[i]]]
    return [mixed[i % len(mixed)] for i in range(n)]


def settings_for(docs: Path, index: Path):  # noqa: ANN201
    from assistant.settings import Settings

    return Settings.load(env={}, docs_dir=docs, index_dir=index, backend="torch", progressive_min_chunks=10**9)


ANN_CACHE = Path("/tmp/bench_ann")  # bench_ann.py's real MiniLM vectors of these corpora, and of the questions
VECTORS = "pooled"  # --vectors: "pooled" (real MiniLM geometry, below) or "hash" (HashEmbedder's own)


def pooled_vectors():  # noqa: ANN201
    """bench_ann.py's cache: 116k real MiniLM vectors of Python/PostgreSQL docs chunks, and the evaluation
    questions' vectors by question text."""
    import numpy as np

    vec, qz = ANN_CACHE / "vectors.npy", ANN_CACHE / "queries.npz"
    if not vec.is_file() or not qz.is_file():
        raise SystemExit(f"error: {vec} or {qz} missing: run `benchmarks/bench_ann.py --encode-only` once "
                         "(about 15 minutes), or pass --vectors hash")
    qs: list[str] = []
    for name in ("questions.jsonl", "pydocs_questions.jsonl", "pgdocs_questions.jsonl"):  # bench_ann's order
        qs += [json.loads(line)["question"] for line in (ROOT / "eval" / name).read_text().splitlines()
               if line.strip()]
    q = np.load(qz)["q"]
    return np.load(vec, mmap_mode="r"), dict(zip(qs, q, strict=True))


def fake_embedder():  # noqa: ANN201
    """The deterministic stand-in for the model (encoding left out of every number).

    "hash": HashEmbedder, bag-of-words vectors from word hashes. Their geometry is not a model's: the common
    words dominate every vector, so IVF lists came out very unbalanced at 1M chunks (the largest 9.7x the
    mean) and a query probes mostly the largest lists; dense timings then describe that distribution.
    "pooled" (default): each text gets a real MiniLM vector of these same corpora (bench_ann.py's cache,
    116k of them), chosen by a hash of the text, plus gaussian noise (sigma 0.02 per dimension, seeded by
    the text, cosine ~0.93 to the source: bench_ann's noise replicas), so vectors have a real model's
    clusters and every text its own vector; the questions get their real MiniLM vectors. Rankings are then
    not semantic (a text's vector is not its meaning), which a latency and memory benchmark does not need."""
    import numpy as np

    from assistant.embed import HashEmbedder

    if VECTORS == "hash":
        return HashEmbedder(dimension=DIMENSION)
    pool, questions = pooled_vectors()

    class Pooled(HashEmbedder):
        def __init__(self) -> None:
            super().__init__(dimension=DIMENSION)
            self.model_id = f"pooled-minilm-{DIMENSION}"

        def embed(self, texts, *, batch_size: int = 64, progress: bool = False):  # noqa: ANN001, ANN202
            self.calls += 1
            self.embedded += len(texts)
            out = np.empty((len(texts), DIMENSION), dtype=np.float32)
            for i, t in enumerate(texts):
                q = questions.get(t)
                if q is not None:
                    out[i] = q
                    continue
                h = int.from_bytes(hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                                   "little")
                v = pool[h % len(pool)] + np.random.default_rng(h).standard_normal(DIMENSION, np.float32) * 0.02
                out[i] = v / np.linalg.norm(v)
            return out

    return Pooled()


def recording_embedder():  # noqa: ANN201
    """The fake embedder, keeping what it was asked to embed and the seconds it took."""
    inner = fake_embedder()

    class Recording:
        def __init__(self) -> None:
            self.batches: list[list[str]] = []
            self.seconds = 0.0

        def __getattr__(self, name: str):  # noqa: ANN204
            return getattr(inner, name)

        def embed(self, texts, *, batch_size: int = 64, progress: bool = False):  # noqa: ANN001, ANN202
            t = time.perf_counter()
            out = inner.embed(texts, batch_size=batch_size, progress=progress)
            self.seconds += time.perf_counter() - t
            self.batches.append(list(texts))
            return out

    return Recording()


# --- the processes -------------------------------------------------------------------------------------


def run_child(args: list[str], result: Path, tail_lines: int = 20) -> dict:
    """Run this script with `args` (output shown as it comes); its result file, or the error."""
    result.unlink(missing_ok=True)
    tail: deque[str] = deque(maxlen=tail_lines)
    cmd = [sys.executable, str(Path(__file__).resolve()), *args, "--vectors", VECTORS, "--result", str(result)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT) as p:
        assert p.stdout is not None
        for line in p.stdout:
            print("    " + line, end="", flush=True)
            tail.append(line.rstrip())
        code = p.wait()
    if result.is_file():
        out = json.loads(result.read_text())
        if code and "error" not in out:
            out["error"] = f"exit code {code}"
        return out
    why = "killed (out of memory?)" if code == -9 else f"exit code {code}"
    last = next((t for t in reversed(tail) if t.strip()), "")
    return {"error": f"{why}: {last}"[:300]}


def calibrate(work: Path, files: list[str]) -> dict:
    """Chunks per file of replica 0, and how many chunks of replica 1 repeat a text of replica 0."""
    from assistant.index import build_index
    from assistant.retrieve.retriever import Retriever

    calib = work / "calibration"
    shutil.rmtree(calib, ignore_errors=True)
    docs, index = calib / "docs", calib / "index"
    link_docs(work, docs, [(0, rel) for rel in files], files)
    s = settings_for(docs, index)
    emb = recording_embedder()
    r0 = build_index(s, embedder=emb)
    distinct = emb.embedded  # texts the embedder was given: a text repeated within the build goes once
    try:
        per_file = {d.path.split("/", 1)[1]: d.chunks for d in Retriever.open(s, embedder=emb).documents()}
    except AttributeError:  # no per-document counts: share the chunks out by file size
        sizes = {rel: (docs / "r000" / rel).stat().st_size for rel in files}
        per_file = {rel: round(r0.chunks * n / sum(sizes.values())) for rel, n in sizes.items()}
    one = work / "pool" / "r001"
    ensure_replica(work, 1, files)
    shutil.copytree(one, docs / "r001", copy_function=os.link, ignore=shutil.ignore_patterns(".complete"))
    r1 = build_index(s, embedder=emb)
    added, new = r1.chunks - r0.chunks, emb.embedded - distinct  # new: texts not in the cache from r000
    shutil.rmtree(calib, ignore_errors=True)
    print(f"calibration: one replica = {len(files)} files, {r0.chunks:,} chunks ({distinct:,} distinct texts);"
          f" the next replica adds {added:,} chunks, {new:,} distinct texts not seen in the first")
    return {"version": PERTURB_VERSION, "files_digest": _digest(files), "files": len(files),
            "chunks_per_replica": r0.chunks, "distinct_per_replica": distinct,
            "next_replica_chunks": added, "next_replica_new_texts": new,
            "shared_with_previous": max(0, distinct - new), "per_file": per_file}


def _digest(files: list[str]) -> str:
    return hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]


def one_size(work: Path, size: int, calibration: dict, files: list[str], opens: int, nq: int, out: dict) -> dict:
    """Fills `out` as it goes, so a failure late in the run keeps what was measured before it."""
    from assistant.index import build_index

    per_file = calibration["per_file"]
    plan = plan_for(size, per_file, files)
    base = work / f"size-{size}"
    docs, index = base / "docs", base / "index"
    t = time.perf_counter()
    link_docs(work, docs, plan, files)
    shutil.rmtree(index, ignore_errors=True)
    replicas = max(r for r, _ in plan) + 1
    print(f"corpus: {len(plan):,} files in {replicas} replica folders ({time.perf_counter() - t:.1f} s to link)",
          flush=True)
    out.update(size=size, files=len(plan), replicas=replicas,
               estimated_chunks=sum(per_file.get(rel, 0) for _, rel in plan))

    s = settings_for(docs, index)
    emb = recording_embedder()
    report = build_index(s, embedder=emb)
    out.update(chunks=report.chunks, embedded=report.embedded, build_seconds=report.seconds,
               build_timings=report.timings, encode_seconds_in_build=emb.seconds, build_peak_rss_mb=peak_mb())
    print(f"build: {report.summary()}", flush=True)
    batches, emb = emb.batches, None
    bare = fake_embedder()
    t = time.perf_counter()
    for part in batches:
        bare.embed(part, batch_size=64)
    out["encode_seconds"] = time.perf_counter() - t
    out["encoded_texts"] = sum(map(len, batches))
    del batches
    out["build_beyond_encoding"] = out["build_seconds"] - out["encode_seconds"]
    print(f"build {out['build_seconds']:.1f} s - bare fake embedder on the same {out['encoded_texts']:,} texts "
          f"{out['encode_seconds']:.1f} s = {out['build_beyond_encoding']:.1f} s beyond encoding "
          f"(in-build embedder time {out['encode_seconds_in_build']:.1f} s)", flush=True)
    out["disk_bytes"] = du(index, cache=False)
    out["cache_bytes"] = du(index, cache=True)
    out["bytes_per_chunk"] = out["disk_bytes"] / max(1, report.chunks)

    runs = []
    for i in range(opens):
        last = i == opens - 1
        r = run_child(["--open", str(index), "--docs", str(docs), "--queries", str(nq if last else 0)],
                      base / f"open-{i}.json")
        runs.append(r)
        if "error" in r:
            out["open_error"] = r["error"]
            break
    ok = [r for r in runs if "error" not in r]
    if ok:
        out["open_seconds"] = statistics.median(r["open_seconds"] for r in ok)
        out["open_seconds_all"] = [r["open_seconds"] for r in ok]
        out["rss_before_open_mb"] = statistics.median(r["rss_before_mb"] for r in ok)
        out["rss_after_open_mb"] = statistics.median(r["rss_after_open_mb"] for r in ok)
        q = ok[-1]
        if "p50_ms" in q:
            out.update({k: q[k] for k in ("rss_after_queries_mb", "p50_ms", "p95_ms", "max_ms", "queries",
                                          "stage_p50_ms", "omp_threads") if k in q})

    out["updates"] = {}
    one_file_updates(s, plan, docs, index, per_file, out["updates"])
    return out


def one_file_updates(s, plan: list[tuple[int, str]], docs: Path, index: Path,  # noqa: ANN001
                     per_file: dict[str, int], ups: dict) -> None:
    from assistant.index import build_index

    last = max(r for r, _ in plan)
    mine = sorted((per_file.get(rel, 0), rel) for r, rel in plan if r == last)
    chunks, rel = mine[len(mine) // 2]
    word = f"Added{last:03d}"
    text = perturb(rel, source_path(rel).read_text(encoding="utf-8", errors="surrogateescape"), word)
    target = docs / f"r{last:03d}" / "added" / rel.rsplit("/", 1)[-1]
    hits = [m.start() for m in re.finditer(re.escape(f"{word}."), text)]
    at = hits[len(hits) // 2] + len(word) + 1 if hits else len(text) // 2
    changed = f"{text[:at]} This sentence was inserted by bench_scale to change the file.{text[at:]}"
    emb = fake_embedder()
    print(f"one file: {target.relative_to(docs)} (copy of {rel}, about {chunks} chunks)", flush=True)

    def step(name: str, act, paths: list[str] | None = None) -> dict:  # noqa: ANN001
        act()
        before, size0 = io_counters(), du(index)
        t = time.perf_counter()
        report = build_index(s, embedder=emb, paths=paths)
        wall = time.perf_counter() - t
        after = io_counters()
        r = {"seconds": wall, "embedded": report.embedded, "summary": report.summary(),
             "growth_bytes": du(index) - size0, "timings": report.timings,
             **{k: after.get(k, 0) - before.get(k, 0) for k in ("wchar", "write_bytes", "cancelled_write_bytes")}}
        print(f"  {name:6} {wall:6.2f} s, {r['write_bytes'] / MB:7.1f} MB written (write_bytes), "
              f"{r['wchar'] / MB:7.1f} MB wchar, index {r['growth_bytes'] / MB:+7.1f} MB; {report.summary()}",
              flush=True)
        return r

    def add() -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8", errors="surrogateescape")

    def change() -> None:
        target.write_text(changed, encoding="utf-8", errors="surrogateescape")

    ups["file"] = str(target.relative_to(docs))
    ups["add"] = step("add", add)
    ups["change"] = step("change", change)
    ups["remove"] = step("remove", target.unlink)
    # The same three with the file named (build_index(paths=...), as the chat's uploads and removals do):
    # no scan of the folder.
    named = [ups["file"]]
    ups["add_named"] = step("add (named)", add, named)
    ups["change_named"] = step("change (named)", change, named)
    ups["remove_named"] = step("remove (named)", target.unlink, named)


def open_once(index: Path, docs: Path, nq: int) -> dict:
    import faiss  # library load is not the index's cost
    import numpy  # noqa: F401

    from assistant.retrieve.retriever import Retriever

    s = settings_for(docs, index)
    emb = fake_embedder()
    out = {"rss_before_mb": rss_mb(), "omp_threads": faiss.omp_get_max_threads()}
    t = time.perf_counter()
    r = Retriever.open(s, embedder=emb)
    out["open_seconds"] = time.perf_counter() - t
    out["rss_after_open_mb"] = rss_mb()
    print(f"open {out['open_seconds']:.3g} s, RSS {out['rss_before_mb']:.0f} -> {out['rss_after_open_mb']:.0f} MB",
          flush=True)
    if nq:
        qs = questions(nq)
        # search_with_timings is what search runs, with the time of each stage; plain search if it is gone
        timed = getattr(r, "search_with_timings", None) or (lambda q, k: (r.search(q, k), {}))
        for q in qs[:10]:
            timed(q, 5)
        ms, stages = [], {}
        for q in qs:
            t = time.perf_counter()
            _, timings = timed(q, 5)
            ms.append((time.perf_counter() - t) * 1000)
            for k, v in timings.items():
                stages.setdefault(k, []).append(v)
        out.update(queries=len(ms), p50_ms=pct(ms, 50), p95_ms=pct(ms, 95), max_ms=max(ms),
                   rss_after_queries_mb=rss_mb(), stage_p50_ms={k: pct(v, 50) for k, v in stages.items()})
        print(f"{len(ms)} queries: p50 {out['p50_ms']:.1f} ms, p95 {out['p95_ms']:.1f} ms, "
              f"RSS {out['rss_after_queries_mb']:.0f} MB; stage p50 "
              + (", ".join(f"{k} {v:.1f}" for k, v in out["stage_p50_ms"].items()) or "—")
              + f"; faiss OpenMP threads {out['omp_threads']}", flush=True)
    return out


def latency_side_by_side(work: Path, sizes: list[int], nq: int) -> dict:
    """Every size's index open in this one process, the same queries run on each in turn (query i on the
    smallest, then on the next, ..., the starting size rotating), so that the load of a shared machine falls
    on all sizes alike: the ratio of their p50s is the number to read, not the p50s of separate runs."""
    from assistant.retrieve.retriever import Retriever

    emb = fake_embedder()
    rets = [Retriever.open(settings_for(work / f"size-{n}" / "docs", work / f"size-{n}" / "index"), embedder=emb)
            for n in sizes]
    qs = questions(nq)
    for r in rets:
        for q in qs[:10]:
            r.search(q, 5)
    ms: list[list[float]] = [[] for _ in sizes]
    for i, q in enumerate(qs):
        for j in range(len(sizes)):
            at = (i + j) % len(sizes)
            t = time.perf_counter()
            rets[at].search(q, 5)
            ms[at].append((time.perf_counter() - t) * 1000)
    out = {str(n): {"p50_ms": pct(m, 50), "p95_ms": pct(m, 95)} for n, m in zip(sizes, ms, strict=True)}
    base = out[str(sizes[0])]["p50_ms"]
    for n in sizes:
        out[str(n)]["p50_ratio"] = out[str(n)]["p50_ms"] / base
    print("side by side, " + f"{len(qs)} queries on each: "
          + "; ".join(f"{n:,}: p50 {v['p50_ms']:.1f} ms ({v['p50_ratio']:.2f}x), p95 {v['p95_ms']:.1f} ms"
                      for n in sizes for v in [out[str(n)]]), flush=True)
    return out


# --- the table -----------------------------------------------------------------------------------------


def _f(x: object, fmt: str) -> str:
    return format(x, fmt) if isinstance(x, int | float) else "—"


def table(rows: list[dict]) -> str:
    head = ["size", "chunks", "build s beyond encoding", "disk MB", "bytes/chunk", "open s", "RSS after open MB",
            "RSS after 100 q MB", "p50 ms", "p95 ms", "add s/MB", "change s/MB", "remove s/MB",
            "named add / change / remove s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
    for r in rows:
        if "error" in r and "chunks" not in r:
            lines.append(f"| {r['size']:,} | error: {r['error']} |" + " |" * (len(head) - 2))
            continue
        ups = r.get("updates", {})
        cells = [f"{r['size']:,}", f"{r['chunks']:,}", _f(r.get("build_beyond_encoding"), ".1f"),
                 _f(r.get("disk_bytes", 0) / MB, ".1f"), _f(r.get("bytes_per_chunk"), ",.0f"),
                 _f(r.get("open_seconds"), ".3g"), _f(r.get("rss_after_open_mb"), ".0f"),
                 _f(r.get("rss_after_queries_mb"), ".0f"), _f(r.get("p50_ms"), ".1f"), _f(r.get("p95_ms"), ".1f")]
        for k in ("add", "change", "remove"):
            u = ups.get(k)
            cells.append(f"{u['seconds']:.2f} / {u['write_bytes'] / MB:.1f}" if u else "—")
        named = [ups.get(f"{k}_named") for k in ("add", "change", "remove")]
        cells.append(" / ".join(f"{u['seconds']:.3f}" for u in named if u) or "—")
        lines.append("| " + " | ".join(cells) + " |")
        if "error" in r or "open_error" in r:
            lines.append(f"| {r['size']:,} | error: {r.get('error') or r.get('open_error')} |"
                         + " |" * (len(head) - 2))
    return "\n".join(lines)


def details(rows: list[dict], calibration: dict) -> str:
    out = [f"One replica: {calibration['files']} files, {calibration['chunks_per_replica']:,} chunks "
           f"({calibration['distinct_per_replica']:,} distinct texts); the next replica adds "
           f"{calibration['next_replica_chunks']:,} chunks with {calibration['next_replica_new_texts']:,} "
           f"distinct texts not seen in the first (about {calibration['shared_with_previous']:,} repeat one).",
           "build s beyond encoding = build_index seconds - seconds of a fresh fake embedder embedding the "
           "very texts (and slices) the build embedded, in the same process afterwards.",
           "disk MB: du of the index folder without the embedding cache. add/change/remove: wall seconds of "
           "the incremental build_index / MB written (write_bytes of /proc/self/io).", ""]
    head = ["size", "files", "replicas", "distinct texts", "build s", "encode s (bare)", "encode s (in build)",
            "build peak RSS MB", "embedding cache MB", "search stages p50 ms (faiss threads)", "RSS before open MB",
            "opens s", "add/change/remove wchar MB", "add/change/remove index growth MB"]
    out += ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
    for r in rows:
        if "chunks" not in r:
            continue
        ups = r.get("updates", {})
        kinds = [ups[k] for k in ("add", "change", "remove") if k in ups]
        out.append("| " + " | ".join([
            f"{r['size']:,}", f"{r['files']:,}", str(r["replicas"]), _f(r.get("encoded_texts"), ","),
            _f(r.get("build_seconds"), ".1f"),
            _f(r.get("encode_seconds"), ".1f"), _f(r.get("encode_seconds_in_build"), ".1f"),
            _f(r.get("build_peak_rss_mb"), ".0f"), _f(r.get("cache_bytes", 0) / MB, ".1f"),
            " ".join(f"{k.removesuffix('_ms')} {v:.1f}" for k, v in r.get("stage_p50_ms", {}).items())
            + f" ({r.get('omp_threads', '?')})",
            _f(r.get("rss_before_open_mb"), ".0f"),
            " ".join(f"{x:.3g}" for x in r.get("open_seconds_all", [])) or "—",
            " / ".join(f"{u['wchar'] / MB:.1f}" for u in kinds) or "—",
            " / ".join(f"{u['growth_bytes'] / MB:+.1f}" for u in kinds) or "—"]) + " |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="30000,300000,1000000", help="target chunk counts, comma-separated")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_scale"), help="pool, corpora and indexes")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--opens", type=int, default=3, help="fresh processes that open each index")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--keep", action="store_true", help="keep each size's documents and index")
    ap.add_argument("--vectors", choices=("pooled", "hash"), default="pooled",
                    help="the fake embedder's vectors (see fake_embedder)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--calibrate", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--open", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--side-by-side", help=argparse.SUPPRESS)
    ap.add_argument("--docs", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = args.work.resolve()
    global VECTORS
    VECTORS = args.vectors

    if args.open or args.calibrate or args.one or args.side_by_side:  # a child: its result goes to --result
        res: dict = {"size": args.one} if args.one else {}
        try:
            if args.side_by_side:
                res = latency_side_by_side(work, [int(x) for x in args.side_by_side.split(",")], args.queries)
            elif args.open:
                res = open_once(args.open, args.docs, args.queries)
            elif args.calibrate:
                res = calibrate(work, source_files())
            else:
                calibration = json.loads((work / "calibration.json").read_text())
                one_size(work, args.one, calibration, source_files(), args.opens, args.queries, res)
        except Exception as e:  # reported in the row; the parent goes on
            import traceback

            traceback.print_exc()
            res["error"] = f"{type(e).__name__}: {e}"[:300]
        args.result.write_text(json.dumps(res, indent=1))
        return 1 if "error" in res else 0

    sizes = [int(x) for x in args.sizes.replace("_", "").split(",") if x.strip()]
    work.mkdir(parents=True, exist_ok=True)
    files = source_files()
    cal_path = work / "calibration.json"
    calibration = json.loads(cal_path.read_text()) if cal_path.is_file() else {}
    if calibration.get("version") != PERTURB_VERSION or calibration.get("files_digest") != _digest(files):
        print("calibrating: building replicas r000 and r001 once to count chunks per file", flush=True)
        calibration = run_child(["--calibrate", "--work", str(work)], work / "calibration.tmp.json")
        if "error" in calibration:
            print(f"error: calibration failed: {calibration['error']}", file=sys.stderr)
            return 1
        cal_path.write_text(json.dumps(calibration))
    print(f"one replica: {calibration['chunks_per_replica']:,} chunks; sizes: "
          + ", ".join(f"{n:,} = {len(p):,} files in {max(r for r, _ in p) + 1} replica(s)"
                      for n in sizes for p in [plan_for(n, calibration["per_file"], files)]), flush=True)

    rows = []
    for n in sizes:
        print(f"\n== {n:,} chunks", flush=True)
        t = time.perf_counter()
        row = run_child(["--one", str(n), "--work", str(work), "--opens", str(args.opens),
                         "--queries", str(args.queries)], work / f"result-{n}.json")
        row.setdefault("size", n)
        row["wall_seconds"] = time.perf_counter() - t
        rows.append(row)
    built = [r["size"] for r in rows if "chunks" in r and "open_error" not in r]
    side: dict = {}
    if len(built) > 1:
        print(f"\n== search latency side by side ({', '.join(f'{n:,}' for n in built)})", flush=True)
        side = run_child(["--side-by-side", ",".join(map(str, built)), "--work", str(work),
                          "--queries", str(args.queries)], work / "result-side-by-side.json")
    if not args.keep:
        for n in sizes:
            shutil.rmtree(work / f"size-{n}", ignore_errors=True)

    print()
    print(table(rows))
    print()
    print(details(rows, calibration))
    if side and "error" not in side:
        print("\nSearch latency side by side (one process, queries alternating between sizes):")
        print("| size | p50 ms | p95 ms | p50 / smallest |\n|---:|---:|---:|---:|")
        for n, v in side.items():
            print(f"| {int(n):,} | {v['p50_ms']:.1f} | {v['p95_ms']:.1f} | {v['p50_ratio']:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"calibration": {k: v for k, v in calibration.items() if k != "per_file"},
                                         "sizes": rows, "side_by_side": side}, indent=1))
        print(f"\nwrote {args.json}")
    return 0 if all("error" not in r and "open_error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
