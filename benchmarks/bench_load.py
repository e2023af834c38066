"""Bounded load test of the web chat over HTTP on loopback: concurrent multi-turn conversations, uploads
and removals under load, latency per endpoint, and a cross-talk check.

    .venv/bin/python benchmarks/bench_load.py                      # 30 sessions, at most 120 s of load
    .venv/bin/python benchmarks/bench_load.py --sessions 50 --seconds 180

How it works:

- A temp copy of documents/ gets one small made-up document per session ("The Vorlaquin project was led by
  Ottoline Brask. ..."): every sentence holds a word no other document has, and every session's answers
  are different. `assistant serve` runs as a subprocess on a free port of 127.0.0.1 over that copy (its
  own index and temp folders, no ASSISTANT_* variables), and is stopped and the folders removed at
  the end, also on error or Ctrl+C.
- Each session has its own httpx client and talks to the public Gradio API (POST /gradio_api/call/<name>,
  then read the event stream). A conversation: `documents`, then four `ask`s, each with the conversation
  so far as `history` -- two questions about the session's project, each followed by a follow-up that
  names neither the project nor its leader ("What was its mascot named?") -- and a `search`. Before the
  load, each conversation is asked once, serially, as a reference.
- Uploads take the browser's path, as there is no public upload endpoint: POST /gradio_api/upload, then
  the Documents tab's private "Add to the index" handler through /gradio_api/queue/join (fn_index and
  trigger read from /config), as the page does; then a `search` must find the new document at once, the
  "Remove from the index" handler removes it, and `documents` must no longer list it. One uploader thread
  repeats this while the conversations run, so the index is rebuilt and swapped under load.
- Checks: an answer's `question` must be the one asked; its first citation must quote the session's own
  document (a word unique to it) and some citation the expected fact; anything else is cross-talk (the
  answer or citation belongs to another session) or a wrong answer. Answers that differ from the serial
  reference are counted for information.
- Bounds: --seconds (at most 300) caps the load phase; sessions stop issuing requests at the deadline and
  requests in flight get 10 s of grace; --rounds and --uploads cap the request counts; server start-up
  (120 s) and the reference pass (60 s) have their own limits. A run with the defaults takes under a
  minute on 2 cores.

Prints a table (calls, errors, p50/p95/max ms per endpoint) and exits 1 on any error, cross-talk, wrong
answer or server traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
MAX_SESSIONS = 50
MAX_SECONDS = 300
GRACE_SECONDS = 10  # requests in flight at the deadline may take this long to finish
START_TIMEOUT = 120  # server start-up, index build included
REFERENCE_TIMEOUT = 60
BARRIER_TIMEOUT = 30  # for all threads to have their clients ready
SYLLABLES = ("bra", "cor", "dve", "fal", "gri", "hux", "jor", "kel", "lum", "mar", "nev", "oq", "pra",
             "quil", "ros", "sal", "tev", "ulm", "vor", "wex", "yar", "zan", "tho", "bex", "cal", "dro")
# Each session's follow-ups ask about two of these, so a follow-up's wording fits one document only.
ATTRIBUTES = (
    "mascot", "motto", "slogan", "anthem", "emblem", "flagship", "sponsor", "rival", "patron", "nickname",
    "logo", "password", "warehouse", "laboratory", "newsletter", "prototype", "telescope", "submarine",
    "greenhouse", "lighthouse", "locomotive", "orchard", "vineyard", "quarry", "observatory", "bakery",
    "brewery", "tannery", "sawmill", "shipyard", "aqueduct", "reservoir", "glacier", "volcano", "canyon",
    "lagoon", "meadow", "orchestra", "choir", "regiment", "squadron", "caravan", "flotilla", "monastery",
    "cathedral", "fortress", "citadel", "pavilion", "gazebo", "carousel", "trophy", "medal", "banner",
    "pennant", "insignia", "charter", "treaty", "manifesto", "almanac", "ledger", "atlas", "compass",
    "sextant", "barometer", "thermometer", "metronome", "harpsichord", "violin", "trombone", "accordion",
    "bagpipe", "harmonica", "kettledrum", "xylophone", "mandolin", "banjo", "ukulele", "cello", "oboe",
    "bassoon", "clarinet", "piccolo", "tuba", "saxophone", "tambourine", "gong", "harp", "lute", "zither",
    "sitar", "bugle", "cornet", "flute", "ocarina", "dulcimer", "marimba", "lantern", "windmill", "hangar",
    "kiln", "foundry", "tugboat", "zeppelin", "glider", "bulldozer", "crane", "trawler", "schooner")
PROFESSIONS = ("glassblower", "surveyor", "pharmacist", "cartographer", "clockmaker", "botanist", "welder",
               "librarian", "tailor", "geologist", "locksmith", "organist")


class ApiError(Exception):
    """A request that failed: HTTP status, an error event, a timeout, or a malformed reply."""


# --- the corpus ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Project:
    """One session's made-up document; every sentence holds a word found in no other document."""

    codename: str
    first: str
    last: str
    town: str
    employer: str
    profession: str
    year: int
    budget: int
    attrs: tuple[str, str]  # nouns no other session's document uses
    names: tuple[str, str]

    @property
    def source(self) -> str:
        return f"project-{self.codename.lower()}.txt"

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.codename, self.last, self.town, self.employer, *self.names

    def text(self) -> str:
        c = self.codename
        return (f"The {c} Project\n\n"
                f"The {c} project was led by {self.first} {self.last}.\n"
                f"Work on {c} began in {self.year} in the town of {self.town}.\n"
                f"Before joining {c}, {self.last} worked as a {self.profession} at the {self.employer} works.\n"
                f"The {c} project had a budget of {self.budget} million dollars.\n"
                f"The {c} project's {self.attrs[0]} was named {self.names[0]}.\n"
                f"Its {self.attrs[1]} was named {self.names[1]}.\n")

    def turns(self) -> list[tuple[str, str]]:
        """(question, word the answer must quote) for one conversation; every question after the first
        goes with the conversation so far, and the second and fourth name neither project nor leader."""
        return [(f"Who led the {self.codename} project?", self.last),
                (f"What was its {self.attrs[0]} named?", self.names[0]),
                (f"What was the budget of the {self.codename} project?", str(self.budget)),
                (f"And what was its {self.attrs[1]} named?", self.names[1])]


class Words:
    """Made-up capitalised words, each new and found nowhere in `forbidden` (the other documents)."""

    def __init__(self, rng: random.Random, forbidden: str) -> None:
        self.rng, self.forbidden, self.used = rng, forbidden, set[str]()

    def __call__(self, syllables: int) -> str:
        while True:
            w = "".join(self.rng.choice(SYLLABLES) for _ in range(syllables)).capitalize()
            if w not in self.used and not re.search(rf"\b{w}\b", self.forbidden, re.I):
                self.used.add(w)
                return w


def make_projects(n: int, word: Words) -> list[Project]:
    nouns = [a for a in ATTRIBUTES if not re.search(rf"\b{a}\b", word.forbidden, re.I)]
    word.rng.shuffle(nouns)
    if len(nouns) < 2 * n:
        raise ValueError(f"{n} projects need {2 * n} unused attribute nouns; {len(nouns)} are left")
    return [Project(word(3), word(2), word(3), word(3), word(3), word.rng.choice(PROFESSIONS), 1901 + i,
                    101 + 7 * i, (nouns[2 * i], nouns[2 * i + 1]), (word(3), word(3))) for i in range(n)]


def has_word(text: str, w: str) -> bool:
    return re.search(rf"\b{re.escape(w)}\b", text) is not None


# --- the server ------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`assistant serve` in a subprocess (its own process group), output to a log file."""

    def __init__(self, docs: Path, index: Path, work: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
        (work / "tmp").mkdir()  # the server's temp files stay in `work` even if it is killed
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
                   TOKENIZERS_PARALLELISM="false", GRADIO_TEMP_DIR=str(work / "gradio"), TMPDIR=str(work / "tmp"),
                   NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "assistant.cli", "serve", "--docs", str(docs), "--index-dir", str(index),
             "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=work, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """The app's /config once the server answers."""
        end = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=5) as c:
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    r = c.get(f"{self.url}/config")
                    if r.status_code == 200:
                        return r.json()
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
        raise RuntimeError(f"the server did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def rss_mb(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


# --- the HTTP client -------------------------------------------------------------------------------------

def _sse(resp: httpx.Response, give_up: float) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a server-sent event stream."""
    event = "message"
    for line in resp.iter_lines():
        if time.monotonic() > give_up:
            raise ApiError("timed out while streaming")
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            yield event, line[5:].strip()
            event = "message"


class Api:
    """One session's HTTP client for the chat's public endpoints and the browser's upload path."""

    def __init__(self, url: str, timeout: float) -> None:
        self.timeout = timeout
        self.session = uuid.uuid4().hex[:12]  # for UI handlers: one browser tab, whose state the server keeps
        self.c = httpx.Client(base_url=url, trust_env=False, timeout=httpx.Timeout(timeout, connect=10))

    def close(self) -> None:
        self.c.close()

    def call(self, name: str, *data: Any) -> Any:
        """A public gr.api endpoint: POST the call, then read its event stream to the result."""
        give_up = time.monotonic() + self.timeout
        r = self.c.post(f"/gradio_api/call/{name}", json={"data": list(data)})
        if r.status_code != 200:
            raise ApiError(f"POST /call/{name}: HTTP {r.status_code}: {r.text[:200]}")
        event_id = r.json()["event_id"]
        with self.c.stream("GET", f"/gradio_api/call/{name}/{event_id}") as resp:
            if resp.status_code != 200:
                raise ApiError(f"GET /call/{name}: HTTP {resp.status_code}")
            for event, payload in _sse(resp, give_up):
                if event == "complete":
                    return json.loads(payload)[0]
                if event == "error":
                    raise ApiError(f"{name}: error event: {payload[:300]}")
        raise ApiError(f"{name}: the stream ended without a result")

    def upload(self, name: str, data: bytes) -> dict[str, Any]:
        r = self.c.post("/gradio_api/upload", files=[("files", (name, data, "text/plain"))])
        if r.status_code != 200:
            raise ApiError(f"POST /upload: HTTP {r.status_code}: {r.text[:200]}")
        return {"path": r.json()[0], "orig_name": name, "size": len(data), "mime_type": "text/plain",
                "meta": {"_type": "gradio.FileData"}}

    def add_file(self, fn: tuple[int, int], name: str, data: bytes) -> list[Any]:
        """Upload a file, then run the "Add to the index" handler `fn` on it."""
        return self.run_handler(fn, [self.upload(name, data)])

    def run_handler(self, fn: tuple[int, int], *data: Any) -> list[Any]:
        """A UI event handler (fn_index, trigger id) through the queue, the way the page calls it."""
        give_up = time.monotonic() + self.timeout
        session = self.session
        body = {"data": list(data), "fn_index": fn[0], "trigger_id": fn[1], "session_hash": session,
                "event_data": None}
        r = self.c.post("/gradio_api/queue/join", json=body)
        if r.status_code != 200:
            raise ApiError(f"POST /queue/join: HTTP {r.status_code}: {r.text[:200]}")
        event_id = r.json()["event_id"]
        with self.c.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as resp:
            for _, payload in _sse(resp, give_up):
                msg = json.loads(payload)
                if msg.get("event_id") not in (None, event_id):
                    raise ApiError(f"queue/data: a message of another event {msg.get('event_id')}")
                if msg.get("msg") == "unexpected_error":
                    raise ApiError(f"handler: {msg.get('message')}")
                if msg.get("msg") == "process_completed":
                    if not msg.get("success"):
                        raise ApiError(f"handler failed: {str(msg.get('output'))[:300]}")
                    return msg["output"]["data"]
        raise ApiError("queue/data: the stream ended without a result")


def find_handler(config: dict[str, Any], elem_id: str) -> tuple[int, int]:
    """(fn_index, trigger id) of the click handler of the component with `elem_id`."""
    ids = {c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id}
    for dep in config["dependencies"]:
        for target, event in dep["targets"]:
            if target in ids and event == "click":
                return dep["id"], target
    raise RuntimeError(f"no click handler for #{elem_id} in /config")


# --- the load ---------------------------------------------------------------------------------------------

@dataclass
class Stats:
    """Everything the threads record; one lock for all of it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # failed calls, checks
    crosstalk: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    checked: int = 0
    differs: int = 0
    conversations: int = 0
    cut_off: int = 0
    upload_cycles: int = 0

    def timed(self, endpoint: str, fn: Any, *args: Any) -> Any:
        """fn(*args), its latency recorded under `endpoint`; None (and an error recorded) if it failed."""
        with self.lock:
            self.calls[endpoint] += 1
        t = time.perf_counter()
        try:
            out = fn(*args)
        except Exception as e:  # any failure of a request counts against its endpoint
            self.error(endpoint, f"{type(e).__name__}: {e}")
            return None
        with self.lock:
            self.latencies[endpoint].append((time.perf_counter() - t) * 1000)
        return out

    def error(self, endpoint: str, message: str) -> None:
        with self.lock:
            self.errors[endpoint].append(message)


def check_answer(res: dict[str, Any], question: str, expect: str, p: Project, owners: dict[str, int],
                 me: int, stats: Stats, reference: dict[str, Any] | None) -> None:
    where = f"session {me} asked {question!r}"
    problem = crosstalk = None
    cites = res.get("citations") or []
    if res.get("question") != question:
        crosstalk = f"{where}, got the answer to {res.get('question')!r}"
    elif res.get("abstained") or not cites:
        problem = f"{where}: abstained"
    else:
        first = cites[0]
        owner = owners.get(first["source"])
        if owner is not None and owner != me:
            crosstalk = f"{where}: [1] quotes session {owner}'s document: {first['quote']!r}"
        elif first["source"] != p.source or not any(has_word(first["quote"], t) for t in p.tokens):
            problem = f"{where}: [1] is {first['source']}: {first['quote']!r}"
        elif not any(c["source"] == p.source and has_word(c["quote"], expect) for c in cites):
            problem = f"{where}: no citation quotes {expect!r}: {res.get('answer')!r}"
    with stats.lock:
        stats.checked += 1
        if crosstalk:
            stats.crosstalk.append(crosstalk)
        if problem:
            stats.wrong.append(problem)
        if reference is not None and _cited(reference) != _cited(res):
            stats.differs += 1


def _cited(res: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(c["source"], c["start"], c["end"]) for c in res.get("citations") or []]


def run_session(me: int, p: Project, url: str, args: argparse.Namespace, owners: dict[str, int],
                reference: list[dict[str, Any]] | None, deadline: float, go: threading.Barrier,
                stats: Stats) -> None:
    api = Api(url, args.request_timeout)
    try:
        go.wait()
        for _ in range(args.rounds):
            if time.monotonic() > deadline:
                break
            finished = conversation(me, p, api, args, owners, reference, deadline, stats)
            with stats.lock:
                if finished:
                    stats.conversations += 1
                else:
                    stats.cut_off += 1
    except Exception as e:  # a bug here must show in the report, not end the thread silently
        stats.error("client", f"session {me}: {type(e).__name__}: {e}")
    finally:
        api.close()


def conversation(me: int, p: Project, api: Api, args: argparse.Namespace, owners: dict[str, int],
                 reference: list[dict[str, Any]] | None, deadline: float, stats: Stats) -> bool:
    """One conversation under load; False when the deadline or an error cut it short."""
    docs = stats.timed("documents", api.call, "documents")
    if docs is not None and p.source not in {d["source"] for d in docs}:
        stats.error("documents", f"session {me}: {p.source} not listed")
    history: list[list[str]] = []
    for turn, (question, expect) in enumerate(p.turns()):
        if time.monotonic() > deadline:
            return False
        res = stats.timed("ask", api.call, "ask", question, args.k, "extractive", history)
        if res is None:
            return False
        check_answer(res, question, expect, p, owners, me, stats, reference[turn] if reference else None)
        history.append([question, str(res.get("answer", ""))])
        if turn == 1:
            found = stats.timed("search", api.call, "search", f"{p.codename} {p.profession}", args.k)
            if found is not None and (not found["hits"] or found["hits"][0]["source"] != p.source):
                stats.error("search", f"session {me}: top hit for {p.codename} is not {p.source}")
    return True


def reference_pass(url: str, projects: list[Project], k: int, timeout: float) -> list[list[dict[str, Any]]]:
    """Each conversation once, serially, before the load."""
    api = Api(url, timeout)
    end = time.monotonic() + REFERENCE_TIMEOUT
    out = []
    try:
        for p in projects:
            history: list[list[str]] = []
            answers = []
            for question, _ in p.turns():
                if time.monotonic() > end:
                    raise RuntimeError(f"the reference pass took over {REFERENCE_TIMEOUT} s")
                res = api.call("ask", question, k, "extractive", history)
                answers.append(res)
                history.append([question, res["answer"]])
            out.append(answers)
    finally:
        api.close()
    return out


def run_uploader(url: str, args: argparse.Namespace, add: tuple[int, int], remove: tuple[int, int],
                 word: Words, stop: threading.Event, deadline: float, go: threading.Barrier,
                 stats: Stats) -> None:
    """Add a new document, find it, remove it, check it is gone; repeat until the sessions are done."""
    api = Api(url, args.request_timeout)
    try:
        go.wait()
        for i in range(args.uploads):
            if stop.is_set() or time.monotonic() > deadline:
                break
            token = word(3)
            name = f"upload-{token.lower()}.txt"
            text = (f"The {token} Archive\n\nThe {token} archive was catalogued by {word(2)} {word(3)} in "
                    f"{1700 + i}.\nIt holds {300 + i} letters written in the harbour of {word(3)}.\n")
            out = stats.timed("upload+add", api.add_file, add, name, text.encode())
            if out is None:
                continue
            if 'class="ok"' not in out[0] or name not in out[0]:
                stats.error("upload+add", f"{name}: {out[0][:200]}")
                continue
            found = stats.timed("search (new doc)", api.call, "search", f"{token} archive", 3)
            if found is not None and (not found["hits"] or found["hits"][0]["source"] != name):
                stats.error("search (new doc)", f"{name} not found right after its upload")
            out = stats.timed("remove", api.run_handler, remove, name)
            if out is not None and 'class="ok"' not in out[0]:
                stats.error("remove", f"{name}: {out[0][:200]}")
            docs = stats.timed("documents", api.call, "documents")
            if docs is not None and name in {d["source"] for d in docs}:
                stats.error("documents", f"{name} still listed after its removal")
            with stats.lock:
                stats.upload_cycles += 1
            stop.wait(args.upload_pause)
    except Exception as e:
        stats.error("client", f"uploader: {type(e).__name__}: {e}")
    finally:
        api.close()


# --- report ------------------------------------------------------------------------------------------------

def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def table(stats: Stats) -> str:
    rows = [f"{'endpoint':<18}{'calls':>7}{'errors':>8}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}"]
    names = sorted(set(stats.calls) | set(stats.errors), key=lambda n: (n != "ask", n))
    everything: list[float] = []
    for n in names:
        lat, err = stats.latencies.get(n, []), len(stats.errors.get(n, []))
        everything += lat
        cells = (f"{pct(lat, 50):>10.1f}{pct(lat, 95):>10.1f}{max(lat):>10.1f}" if lat else f"{'-':>10}" * 3)
        rows.append(f"{n:<18}{stats.calls.get(n, 0):>7}{err:>8}{cells}")
    err = sum(len(v) for v in stats.errors.values())
    cells = (f"{pct(everything, 50):>10.1f}{pct(everything, 95):>10.1f}{max(everything):>10.1f}"
             if everything else f"{'-':>10}" * 3)
    rows.append(f"{'all':<18}{sum(stats.calls.values()):>7}{err:>8}{cells}")
    return "\n".join(rows)


def tracebacks(log: str) -> list[str]:
    """The tracebacks in the server's output, each up to the line that names the exception."""
    out = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j].strip()):
                j += 1
            out.append("\n".join(lines[i:j + 1]))
    return out


# --- main --------------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=30, help=f"concurrent chat sessions (1-{MAX_SESSIONS})")
    ap.add_argument("--seconds", type=float, default=120, help=f"cap on the load phase (at most {MAX_SECONDS})")
    ap.add_argument("--rounds", type=int, default=3, help="conversations per session (4 questions each)")
    ap.add_argument("--uploads", type=int, default=30, help="most add/remove cycles of the uploader")
    ap.add_argument("--upload-pause", type=float, default=0.5, help="seconds between upload cycles")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--request-timeout", type=float, default=60)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if not 1 <= args.sessions <= MAX_SESSIONS:
        ap.error(f"--sessions must be 1..{MAX_SESSIONS}")
    if not 1 <= args.seconds <= MAX_SECONDS:
        ap.error(f"--seconds must be 1..{MAX_SECONDS}")
    args.rounds = max(1, min(args.rounds, 20))
    args.uploads = max(0, min(args.uploads, 200))

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    server = None
    try:
        docs = work / "documents"
        shutil.copytree(ROOT / "documents", docs)
        word = Words(rng, " ".join(f.read_text(errors="replace") for f in docs.rglob("*") if f.is_file()))
        projects = make_projects(args.sessions, word)
        for p in projects:
            (docs / p.source).write_text(p.text())
        owners = {p.source: i for i, p in enumerate(projects)}

        t = time.perf_counter()
        server = Server(docs, work / "index", work)
        config = server.wait_ready(START_TIMEOUT)
        add, remove = find_handler(config, "add-docs"), find_handler(config, "remove-doc")
        print(f"server up on {server.url} in {time.perf_counter() - t:.1f} s, "
              f"{len(list(docs.iterdir()))} documents", flush=True)
        t = time.perf_counter()
        reference = reference_pass(server.url, projects, args.k, args.request_timeout)
        serial = Stats()
        for i, (p, answers) in enumerate(zip(projects, reference, strict=True)):
            for (question, expect), res in zip(p.turns(), answers, strict=True):
                check_answer(res, question, expect, p, owners, i, serial, None)
        print(f"reference pass: {serial.checked} questions serially in {time.perf_counter() - t:.1f} s, "
              f"{len(serial.wrong) + len(serial.crosstalk)} wrong", flush=True)
        for item in (serial.crosstalk + serial.wrong)[:5]:
            print(f"  {item}")
        rss_before = server.rss_mb()

        stats = Stats()
        go = threading.Barrier(args.sessions + 2, timeout=BARRIER_TIMEOUT)
        stop = threading.Event()
        deadline = time.monotonic() + args.seconds  # the threads start within milliseconds
        threads = [threading.Thread(target=run_session, daemon=True, name=f"session-{i}",
                                    args=(i, p, server.url, args, owners, reference[i], deadline, go, stats))
                   for i, p in enumerate(projects)]
        uploader = threading.Thread(target=run_uploader, daemon=True, name="uploader",
                                    args=(server.url, args, add, remove, word, stop, deadline, go, stats))
        for th in [*threads, uploader]:
            th.start()
        go.wait()
        start = time.monotonic()
        for th in threads:
            th.join(max(0.0, deadline + GRACE_SECONDS - time.monotonic()))
        stop.set()
        uploader.join(max(0.0, deadline + GRACE_SECONDS - time.monotonic()))
        wall = time.monotonic() - start
        hung = [th.name for th in [*threads, uploader] if th.is_alive()]
        for name in hung:
            stats.error("hung", f"{name} still waiting {GRACE_SECONDS} s after the deadline")
        rss_after = server.rss_mb()
        log = server.log_text()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    return report(args, stats, wall, rss_before, rss_after, tracebacks(log))


def report(args: argparse.Namespace, stats: Stats, wall: float, rss_before: float | None,
           rss_after: float | None, tbs: list[str]) -> int:
    calls = sum(stats.calls.values())
    print()
    print(table(stats))
    print()
    print(f"sessions {args.sessions} x up to {args.rounds} conversations x 4 questions: "
          f"{stats.conversations} conversations finished, {stats.cut_off} cut short; "
          f"uploader: {stats.upload_cycles} add/search/remove cycles")
    print(f"wall {wall:.1f} s (cap {args.seconds:g} s), {calls} requests, {calls / wall:.1f} req/s"
          + (f"; server RSS {rss_before:.0f} -> {rss_after:.0f} MB" if rss_before and rss_after else ""))
    print(f"answers checked {stats.checked}: cross-talk {len(stats.crosstalk)}, wrong {len(stats.wrong)}; "
          f"{stats.differs} differ from the serial reference; server tracebacks {len(tbs)}")
    for title, items in [("cross-talk", stats.crosstalk), ("wrong answers", stats.wrong),
                         *[(f"errors ({n})", v) for n, v in sorted(stats.errors.items())]]:
        if items:
            print(f"\n{title} (first 5 of {len(items)}):")
            for item in items[:5]:
                print(f"  {item}")
    if tbs:
        print(f"\nserver traceback (first of {len(tbs)}):\n{tbs[0]}")
    failed = bool(stats.errors or stats.crosstalk or stats.wrong or tbs)
    print(f"\nresult: {'FAIL' if failed else 'OK'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
