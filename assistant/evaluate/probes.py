"""Unanswerable probes made from a set's answerable questions, for calibrating abstention on a corpus
without writing questions by hand: the question's named subject is swapped for one the corpus never
holds ("Which TCP port does the PostgreSQL server listen on?" → "... the Sybase server ..."), its
identifier for a made-up one, its version for one that does not exist, or a product it does not name is
added ("What does the pass statement do in Fortran?"). Each replacement is checked against the index's
vocabulary (every word of it in no chunk) and, for versions, against the corpus text.

The names below leave out on purpose every name that the held-out question files ask about, so that a
rule fitted on probes is not fitted on those questions' subjects.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from ..answer.question import Name, mentions_version, names, version_mentions
from ..index.terms import tokenize
from .questions import Question

TermCounts = Callable[[Sequence[str]], tuple[dict[str, int], int]]  # the index's (df per term, chunks)

# Products by field; a corpus gets the names of the field whose words it holds most (see `field_of`).
PRODUCTS: dict[str, tuple[str, ...]] = {
    "databases": ("Sybase", "Informix", "Firebird", "CockroachDB", "Teradata", "Couchbase", "Neo4j",
                  "ClickHouse", "Vertica", "Db2", "Ingres", "HyperSQL", "Netezza", "RavenDB"),
    "languages": ("Fortran", "COBOL", "Haskell", "OCaml", "Erlang", "Elixir", "Kotlin", "Clojure",
                  "Lua", "Julia", "Scala", "Dart", "Crystal", "Nim"),
    "systems": ("FreeBSD", "Solaris", "AmigaOS", "OpenVMS", "Haiku", "Plan 9", "QNX", "MINIX"),
    "applications": ("Photoshop", "AutoCAD", "SharePoint", "Lotus Notes", "QuarkXPress", "Blender",
                     "Tableau", "Confluence"),
    "companies": ("Walmart", "Alibaba", "Etsy", "Zalando", "Rakuten", "Costco", "Nintendo", "Carrefour",
                  "Unilever", "Siemens"),
}
# Well-known names a manual may mention in passing (porting notes, history, comparisons): a corpus that
# holds one, but not about the question, makes a harder probe ("known"), since the word is in the index.
KNOWN: dict[str, tuple[str, ...]] = {
    "databases": ("Ingres", "Informix", "Sybase", "SQL Server", "Microsoft Access", "Db2", "SQLite",
                  "Berkeley DB", "MS SQL"),
    "languages": ("Java", "Perl", "Tcl", "JavaScript", "Lisp", "Smalltalk", "Pascal", "Fortran", "Modula-3",
                  "Haskell", "Icon", "Scheme"),
    "systems": ("Linux", "Windows", "macOS", "Solaris", "FreeBSD", "NetBSD", "AIX", "HP-UX"),
    "applications": ("Excel", "Emacs", "Word", "Outlook", "Firefox", "Chrome"),
    "companies": ("Google", "Apple", "Microsoft", "Facebook", "Instagram", "YouTube", "Shopify", "eBay"),
}
FIELD_WORDS: dict[str, tuple[str, ...]] = {
    "databases": ("database", "table", "query", "row", "column", "transaction", "index"),
    "languages": ("function", "module", "interpreter", "syntax", "variable", "class", "compiler"),
    "systems": ("kernel", "driver", "filesystem", "boot", "device", "process", "mount"),
    "applications": ("document", "toolbar", "menu", "click", "user", "window", "file"),
    "companies": ("company", "market", "sales", "business", "customer", "executive", "employee"),
}
PEOPLE = ("Ada Lovelace", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "Niklaus Wirth",
          "Bjarne Stroustrup", "James Gosling", "Anders Hejlsberg", "Brendan Eich", "Margaret Hamilton",
          "Frances Allen", "John Backus")
# Word parts for made-up identifiers: "shared_buffers" → "shared_buffers_turbo" and the like.
PARTS = ("turbo", "lazy", "strict", "smart", "batch", "legacy", "fast", "safe", "auto", "async")
# Questions with these words at the start read on after an added "in X" ("What is X in Fortran?").
_ADDABLE = re.compile(r"^\s*(?:what|which|how|why|when|where|is|are|can|does|do|should)\b", re.I)


@dataclass(frozen=True)
class Probe:
    """One generated unanswerable question and where it came from."""

    question: Question  # kind "probe", answerable False, id "probe-<n>-<source id>"
    source_id: str  # the answerable question it was made from ("" for the person template)
    strategy: str  # "topic", "code", "version", "name", "add", "person"
    original: str  # what was replaced ("" when something was added)
    replacement: str


def _pick(options: Sequence[str], key: str, ok: Callable[[str], bool]) -> str | None:
    """The first of `options` that passes `ok`, starting at a place that depends on `key` (reproducible,
    yet different questions get different names)."""
    if not options:
        return None
    start = int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(options)
    for i in range(len(options)):
        cand = options[(start + i) % len(options)]
        if ok(cand):
            return cand
    return None


class _Corpus:
    """What the generator asks of the corpus: which words it holds, and whether a phrase occurs."""

    def __init__(self, term_counts: TermCounts, texts: Callable[[], Iterable[str]] | None) -> None:
        self._counts = term_counts
        self._texts = texts
        self._versions: dict[tuple[str, str], int] | None = None  # -> documents that write it
        self._df: dict[str, int] = {}
        self.chunks = 0

    def df(self, terms: Sequence[str]) -> dict[str, int]:
        todo = [t for t in set(terms) if t not in self._df]
        if todo:
            got, self.chunks = self._counts(todo)
            self._df.update({t: got.get(t, 0) for t in todo})
        return {t: self._df[t] for t in terms}

    def absent(self, name: str) -> bool:
        """No word of `name` is in any chunk (names without index words never count as absent)."""
        toks = tokenize(name)
        return bool(toks) and all(v == 0 for v in self.df(toks).values())

    def versions(self) -> dict[tuple[str, str], int] | None:
        """Every ("name", "version") the texts write, with how many documents write it; None without texts."""
        if self._texts is None:
            return None
        if self._versions is None:
            counts: dict[tuple[str, str], int] = {}
            for t in self._texts():
                for pair in version_mentions(t):
                    counts[pair] = counts.get(pair, 0) + 1
            self._versions = counts
        return self._versions

    def own_version(self, topic: str) -> str | None:
        """The highest version of `topic` that at least 3 documents write (a manual names older releases,
        seldom newer; one stray "PostgreSQL 20 times" is no release)."""
        found = [v for (w, v), c in (self.versions() or {}).items() if w == topic.lower() and c >= 3]
        return max(found, key=lambda v: tuple(int(x) for x in v.split(".")), default=None)


def field_of(corpus: _Corpus) -> str:
    """The product field whose words the corpus holds in the most chunks."""
    def weight(field: str) -> int:
        return sum(corpus.df(tokenize(" ".join(FIELD_WORDS[field]))).values())
    return max(PRODUCTS, key=weight)


def topic_names(questions: Sequence[Question], corpus: _Corpus, share: float = 0.05) -> list[str]:
    """Product-like names (letters and digits only) that at least two of the questions use and whose
    every word is in at least `share` of the chunks: the corpus' own subject ("PostgreSQL", "Python"),
    most frequent first."""
    counts: dict[str, int] = {}
    for q in questions:
        for n in {n.base if n.kind == "version" else n.text for n in names(q.question)}:
            toks = tokenize(n)
            if toks and re.fullmatch(r"[A-Za-z][A-Za-z0-9]+", n):
                df = corpus.df(toks)
                if all(v >= share * max(corpus.chunks, 1) for v in df.values()):
                    counts[n] = counts.get(n, 0) + 1
    return sorted((t for t in counts if counts[t] >= 2), key=lambda t: (-counts[t], t))


def _made_up(ident: str, corpus: _Corpus, key: str) -> str | None:
    """`ident` with a word part added to its last component, so that the new name is in no chunk."""
    call = ident.endswith("()")
    core = ident[:-2] if call else ident
    head, dot, last = core.rpartition(".")
    if not re.fullmatch(r"[A-Za-z_]\w*", last or "") or (dot and not call and re.fullmatch(r"[a-z]{1,4}", last)):
        return None  # "__init__.py", "pg_hba.conf": a made-up file extension is no near miss
    camel = bool(re.search(r"[a-z][A-Z]", last)) and "_" not in last

    def build(part: str) -> str:
        new = (part.capitalize() + last) if camel else (f"{last}_{part}" if last.islower() or "_" in last
                                                      else f"{last}{part.capitalize()}")
        return f"{head}{dot}{new}{'()' if call else ''}"

    part = _pick(PARTS, key, lambda p: corpus.absent(build(p).rpartition(".")[2].rstrip("()")))
    return build(part) if part else None


def _bumped(n: Name, corpus: _Corpus) -> str | None:
    """A version of `n.base` that the corpus text never writes, well past the one asked about."""
    known = corpus.versions()
    if known is None:
        return None
    parts = n.version.split(".")
    for step in (8, 12, 17, 23):
        if len(parts) == 1:
            cand = str(int(parts[0]) + step)
        else:
            cand = ".".join([parts[0], str(int(parts[1]) + step), *parts[2:]])
        if not mentions_version(set(known), Name(f"{n.base} {cand}", "version", n.base, cand)):
            return cand
    return None


def _swap(text: str, old: str, new: str) -> str:
    i = text.find(old)
    return text if i < 0 else text[:i] + new + text[i + len(old):]


def _add(text: str, what: str) -> str:
    body = text.rstrip()
    end = body[-1] if body and body[-1] in "?.!" else ""
    return f"{body[:-1] if end else body} in {what}{end or '?'}"


def make_probes(questions: Sequence[Question], term_counts: TermCounts, n: int,
                texts: Callable[[], Iterable[str]] | None = None, *, topic_share: float = 0.05) -> list[Probe]:
    """Up to `n` probes from the answerable questions of `questions` that do not continue a conversation
    (a follow-up's subject is in the turns before it). Per question the first strategy that applies: its
    version bumped past any the corpus text has (needs `texts`); its identifier made up; the corpus' own
    subject swapped for a product the corpus never names; another name of it swapped likewise; or such a
    product added ("... in Fortran?"). A few person probes ("What did Grace Hopper contribute to X?")
    come last. Each question whose subject or product strategy applies also yields a "-known" probe with a
    product the corpus does mention, in under `topic_share` of its chunks (the harder case: the word is in
    the index, only not about this). `term_counts` is the index's (IndexReader.term_counts); `texts`
    yields the documents' texts."""
    corpus = _Corpus(term_counts, texts)
    corpus.df(["the"])  # learns the chunk count
    field = field_of(corpus)
    products = [p for p in PRODUCTS[field] if corpus.absent(p)]
    people = [p for p in PEOPLE if corpus.absent(p.split()[-1])]
    topics = topic_names(questions, corpus, topic_share)
    rare = max(corpus.chunks, 1) * topic_share
    known = [p for p in KNOWN[field] if (df := corpus.df(tokenize(p))) and all(0 < v < rare for v in df.values())]
    out: list[Probe] = []
    seeds = [q for q in questions if q.answerable and q.follows is None]
    for q in seeds:
        for pool, suffix in ((products, ""), (known, "-known")):
            made = _one(q, corpus, pool, topics, fabricate=not suffix)
            if made is None or len(out) >= n:
                continue
            strategy, old, new, text = made
            pq = replace(q, id=f"probe-{len(out) + 1}-{q.id}", question=text, gold_sources=(), gold_quotes=(),
                         answer="", answerable=False, kind="probe", follows=None)
            out.append(Probe(pq, q.id, strategy + suffix, old, new))
    topic = topics[0] if topics else ""
    for person in people:
        if len(out) >= n or not topic:
            break
        text = f"What did {person} contribute to {topic}?"
        pq = Question(f"probe-{len(out) + 1}-person", text, (), (), "", False, "probe")
        out.append(Probe(pq, "", "person", "", person))
    return out


def _one(q: Question, corpus: _Corpus, products: Sequence[str], topics: Sequence[str], *,
         fabricate: bool = True) -> tuple[str, str, str, str] | None:
    """(strategy, original, replacement, new question) for one answerable question, or None. Without
    `fabricate`, only a product of `products` is swapped in or added."""
    found = names(q.question)
    key = q.id
    for nm in found if fabricate else ():
        if nm.kind == "version":
            new = _bumped(nm, corpus)
            if new:
                return "version", nm.version, new, _swap(q.question, nm.text, f"{nm.base} {new}")
    for nm in found if fabricate else ():
        if nm.kind == "code" and nm.text not in topics:
            new = _made_up(nm.text, corpus, key)
            if new:
                return "code", nm.text, new, _swap(q.question, nm.text, new)
    product = _pick(products, key, lambda _p: True)
    if product is None:
        return None
    for nm in found:
        subject = nm.base if nm.kind == "version" else nm.text  # "PostgreSQL 9.6" → "Sybase 9.6"
        if subject in topics:
            return "topic", subject, product, _swap(q.question, subject, product)
    for nm in found:
        if nm.kind == "proper" and re.search(r"[a-z]", nm.text) and not corpus.absent(nm.text):
            # Titlecase names only: all-capital words are mostly acronyms and keywords (SQL's SELECT)
            return "name", nm.text, product, _swap(q.question, nm.text, product)
    if _ADDABLE.match(q.question) and not found:
        return "add", "", product, _add(q.question, product)
    return None


def make_controls(questions: Sequence[Question], term_counts: TermCounts, n: int,
                  texts: Callable[[], Iterable[str]] | None = None, *, topic_share: float = 0.05) -> list[Probe]:
    """Up to `n` answerable rewrites that a near-miss rule must not abstain on: an answerable question
    that names nothing, with the corpus' own subject added ("What does the pass statement do in
    Python?"), alternately with its own version ("... in Python 3.11?": the highest the corpus writes).
    They keep the question's gold, so they score like it."""
    corpus = _Corpus(term_counts, texts)
    corpus.df(["the"])
    topics = topic_names(questions, corpus, topic_share)
    if not topics:
        return []
    topic = topics[0]
    own = corpus.own_version(topic) if texts is not None else None
    out: list[Probe] = []
    for q in questions:
        if len(out) >= n:
            break
        if not q.answerable or q.follows is not None or names(q.question) or not _ADDABLE.match(q.question):
            continue
        what = f"{topic} {own}" if own and len(out) % 2 else topic
        pq = replace(q, id=f"control-{len(out) + 1}-{q.id}", question=_add(q.question, what), kind="control",
                     follows=None)
        out.append(Probe(pq, q.id, "version" if what != topic else "topic", "", what))
    return out
