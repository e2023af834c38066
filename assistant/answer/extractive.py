"""Extractive answers: the best few sentences of the retrieved passages, each quoted verbatim with its span.
A citation is built from offsets into the document text, so it cannot point at words that are not there."""

from __future__ import annotations

import hashlib
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..index.terms import tokenize
from ..quotable import question_before, quotable_spans
from ..records import Answer, Citation, Document, Hit, Turn
from .compose import compose, spoken
from .prompts import ABSTAIN_TEXT
from .question import (
    GENERIC_HEADS,
    Name,
    analyze,
    defined_term,
    has_type,
    mentions_version,
    version_mentions,
)

Embed = Callable[[Sequence[str]], np.ndarray]
Lookup = Callable[[Sequence[str]], Mapping[str, np.ndarray]]  # vectors stored at index time, by text


@dataclass(frozen=True)
class Scoring:
    """Weights of the sentence score; calibrated on eval/questions.jsonl (see eval/README.md)."""

    lexical: float = 0.15  # share of the question's content words found in the sentence
    qa: float = 0.95  # a question right before the sentence (FAQ entry, heading) stands for the sentence
    qa_own: float = 0.1  # among the sentences under one matching question, prefer the closer ones
    context: float = 0.85  # weight of the similarity to "previous question + question" in follow-ups
    continuity: float = 0.15  # follow-ups: bonus for sentences in the passages the previous answer quoted
    rank: float = 0.02  # prior for sentences from higher-ranked passages
    spread: float = 0.10  # sentences scoring this close to the best are kept too
    other_doc: float = 0.02  # ... but one from another document than the best must be this close
    redundant: float = 0.95  # sentences this similar to a chosen one are left out
    heading_lexical: bool = True  # count the question's words found in the sentence's heading too
    asked_for: float = 0.1  # a sentence that holds what the question asks for: a default, a definition
    compose: bool = True  # quote a sentence with the one it leans on or that finishes it (answer/compose.py)
    term_section: float = 0.3  # a sentence in the section of the term the question names ("work_mem")
    term_default: float = 0.3  # ... that states its default, when the question asks for the default
    yes_no: float = 0.1  # a yes/no question: a sentence that says yes or no, or under which condition
    why: float = 0.15  # a "why" question: a sentence that gives a reason ("because", "so that", "due to")


_DEFAULT_Q = re.compile(r"\bdefaults?\b", re.I)
_DEFAULT_A = re.compile(r"\bdefaults?\b|\bdefaulted\b", re.I)
# A sentence that states a default ("It defaults to 64 megabytes", "The default is on"), not one that only
# mentions one ("be careful not to set the default value too high").
_STATES_DEFAULT = re.compile(r"\b(?:the default(?: value| setting)? is|defaults? to|is the default|by default|"
                             r"default(?: value)?:)", re.I)


def asked_for(question: str) -> tuple[bool, frozenset[str]]:
    """(the question asks for a default, the words of the term it asks to define)."""
    if _DEFAULT_Q.search(question):
        return True, frozenset()
    return False, frozenset(tokenize(defined_term(question)))


# "Can pg_basebackup back up just one database?", "And is it stable?": answered by a sentence that takes
# a side ("it is not possible", "always", "even when ...", "yes").
_YES_NO_Q = re.compile(r"^\s*(?:(?:and|but|so|also),?\s+)?(?:is|are|was|were|does|do|did|can|could|will|would|should|"
                       r"must|may|has|have)\b", re.I)
_POLAR = re.compile(r"\b(?:not|no|never|cannot|yes|only|always|even|must|without|unless)\b|n't\b", re.I)


def is_yes_no(question: str) -> bool:
    return _YES_NO_Q.match(question) is not None


def takes_a_side(sentence: str) -> bool:
    """Whether a sentence says yes or no, or when: a negation, "only", "always", "even", "unless"."""
    return _POLAR.search(sentence) is not None


# "Why doesn't pg_dump save my roles?": answered by the sentence that gives the reason.
_WHY_Q = re.compile(r"^\s*(?:(?:and|but|so),?\s+)?why\b", re.I)
_REASON = re.compile(r"\b(?:because|since|so that|reason|therefore|due to|as a result|in order to|otherwise)\b", re.I)


def is_why(question: str) -> bool:
    return _WHY_Q.match(question) is not None


def gives_a_reason(sentence: str) -> bool:
    return _REASON.search(sentence) is not None


def gives(sentence: str, default: bool, term: frozenset[str]) -> bool:
    """Whether a sentence holds what asked_for says the question asks for: it states a default, or it
    opens with the term it defines ("Hot standby is the term used to ...")."""
    if default and _DEFAULT_A.search(sentence):
        return True
    return bool(term) and term <= set(tokenize(" ".join(sentence.split()[: len(term) + 2])))


def section_term(heading: str) -> tuple[str, ...]:
    """The term a reference section documents, as index words: "work_mem (integer)" -> ("work_mem",),
    "archive_command (string)", "str.join()"; a prose heading gives its words, which a name rarely equals."""
    return tuple(tokenize(heading.split(" (")[0].split(", ")[0]))


class Vocabulary(Protocol):
    """What the whole corpus holds (IndexReader, PgReader): its term statistics and its texts."""

    doc_texts: Mapping[str, str]

    def term_counts(self, terms: Sequence[str]) -> tuple[dict[str, int], int]: ...  # (df per term, chunks)


VERSION_SCAN_DOCS = 20_000  # corpora up to this many documents are read once for their "Name N" mentions


@dataclass(frozen=True)
class Naming:
    """The named-thing checks of `eligible` (calibrated on generated probes: eval/README.md)."""

    corpus: str = "any"  # "any" / "all" of a name's words in no chunk of the index: abstain; "off": no check
    passages: str = "all"  # "all" / "any" of a name's rare words must be in the passages; "off": no check
    version: bool = True  # "Python 3.19": the name followed by that number must be in the corpus ...
    version_scope: str = "corpus"  # ... ("corpus"), or in a passage ("passages")
    acronyms: bool = False  # the passage check covers all-capital names too ("TCP", "OK", SQL's "SELECT")
    topic_share: float = 0.05  # words in this share of all chunks or more are the corpus' topic, never missing
    best_passage: bool = True  # a proper name's rare words must be in the passage of the best sentence too


def _specific(n: Name) -> str:
    """The words of a name that identify it: a version's base; a proper name without generic heads."""
    if n.kind == "version":
        return n.base
    if n.kind == "proper" and " " in n.text:
        words = n.text.split()
        kept = [w for w in words if w.lower() not in GENERIC_HEADS]
        return " ".join(kept or words)
    return n.text


@dataclass(frozen=True, slots=True)
class _Cand:
    source: str
    start: int
    end: int
    text: str
    hit: Hit
    qa_start: int  # span of a question right before the sentence's paragraph, or -1
    qa_end: int
    heading: str = ""  # the innermost heading the sentence stands under, unless it is the document title
    section: str = ""  # the innermost heading, the document title included


def _text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class SentenceCache:
    """Bounded LRU of sentence vectors keyed by the sentence's own text (a hash of it): passages recur
    across questions, and a key made of the words themselves can never describe other words after a
    document changes (a key of source and offsets did: it quoted a replaced sentence)."""

    def __init__(self, embed: Embed, size: int = 50_000, stored: Lookup | None = None) -> None:
        self._embed = embed
        self._stored = stored
        self.embedded = 0  # sentences this cache had to embed (not in memory, not stored by the index)
        self._size = size
        self._data: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        keys = [_text_key(t) for t in texts]
        with self._lock:
            missing = [i for i, key in enumerate(keys) if key not in self._data]
        if missing and self._stored is not None:
            found = self._stored([texts[i] for i in missing])
            if found:
                with self._lock:
                    for i in missing:
                        v = found.get(texts[i])
                        if v is not None:
                            self._data[keys[i]] = v
                missing = [i for i in missing if texts[i] not in found]
        if missing:
            new = self._embed([texts[i] for i in missing])
            with self._lock:
                self.embedded += len(missing)
                for i, v in zip(missing, new, strict=True):
                    self._data[keys[i]] = v
                while len(self._data) > self._size:
                    self._data.popitem(last=False)
        with self._lock:
            out = []
            for key in keys:
                v = self._data.get(key)
                if v is None:  # evicted meanwhile by another thread
                    v = self._embed([texts[keys.index(key)]])[0]
                else:
                    self._data.move_to_end(key)
                out.append(v)
        return np.stack(out) if out else np.zeros((0, 1), dtype=np.float32)


class ExtractiveAnswerer:
    def __init__(self, embed: Embed, *, threshold: float, max_sentences: int = 3,
                 scoring: Scoring | None = None, naming: Naming | None = None,
                 stored: Lookup | None = None, embed_queries: Embed | None = None) -> None:
        self.threshold = threshold
        self.max_sentences = max_sentences
        self.scoring = scoring or Scoring()
        self.naming = naming or Naming()
        self._embed = embed
        self._embed_queries = embed_queries or embed  # the question (and its context), not sentences
        self.cache = SentenceCache(embed, stored=stored)
        self._versions: weakref.WeakKeyDictionary[object, frozenset[tuple[str, str]]] = weakref.WeakKeyDictionary()
        self._versions_lock = threading.Lock()

    def corpus_versions(self, vocabulary: Vocabulary) -> frozenset[tuple[str, str]] | None:
        """Every ("name", "version") the corpus writes ("postgresql", "15"), read once per index snapshot
        (a reader never changes); None for corpora over VERSION_SCAN_DOCS documents."""
        with self._versions_lock:
            found = self._versions.get(vocabulary)
            if found is None:
                texts = vocabulary.doc_texts
                if len(texts) > VERSION_SCAN_DOCS:
                    return None
                found = frozenset().union(*(version_mentions(texts[p]) for p in texts))
                self._versions[vocabulary] = found
        return found

    def candidates(self, hits: Sequence[Hit], doc_texts: Mapping[str, str],
                   documents: Mapping[str, Document]) -> list[_Cand]:
        seen: set[str] = set()
        out: list[_Cand] = []
        for h in hits:
            text = doc_texts[h.source]
            doc = documents.get(h.source)
            last = -1
            for ps, s, e in quotable_spans(text, h.start, h.end):  # the same texts the index embedded
                if ps != last:
                    last = ps
                    qs, qe = question_before(text, doc, ps)
                    path = doc.heading_path(ps) if doc is not None else ()
                    heading = path[-1] if path and path[-1] != doc.title else ""
                sent = text[s:e]
                norm = " ".join(sent.split()).lower()
                if norm in seen:
                    continue
                seen.add(norm)
                out.append(_Cand(h.source, s, e, sent, h, qs, qe, heading, path[-1] if path else ""))
        return out

    def score(self, question: str, hits: Sequence[Hit], doc_texts: Mapping[str, str],
              documents: Mapping[str, Document], history: Sequence[Turn] = ()
              ) -> tuple[list[_Cand], np.ndarray, np.ndarray]:
        """Candidates, their scores, and their vectors."""
        cands = self.candidates(hits, doc_texts, documents)
        if not cands:
            return [], np.zeros(0), np.zeros((0, 1))
        sc = self.scoring
        queries = [question] + ([f"{history[-1].question} {question}"] if history else [])
        qv = self._embed_queries(queries)
        sv = self.cache.vectors([c.text for c in cands])
        sim = sv @ qv[0]
        if len(qv) > 1:
            sim = np.maximum(sim, sc.context * (sv @ qv[1]))
        qa_keys = sorted({(c.source, c.qa_start, c.qa_end) for c in cands if c.qa_start >= 0})
        qa_sim: dict[tuple[str, int, int], float] = {}
        if qa_keys:
            qav = self.cache.vectors([doc_texts[s][a:b] for s, a, b in qa_keys])
            for key, v in zip(qa_keys, qav @ qv[0], strict=True):
                qa_sim[key] = float(v)
        qterms = set(tokenize(question))
        want_default, term = asked_for(question) if sc.asked_for else (False, frozenset())
        previous = history[-1].citations if history else ()
        named = {tuple(tokenize(n.text)) for n in analyze(question).names if n.kind in ("code", "quoted")}
        yes_no = sc.yes_no > 0 and is_yes_no(question)
        why = sc.why > 0 and is_why(question)
        scores = np.empty(len(cands))
        for i, c in enumerate(cands):
            words = f"{c.heading} {c.text}" if sc.heading_lexical else c.text
            lex = len(qterms & set(tokenize(words))) / len(qterms) if qterms else 0.0
            qa = qa_sim.get((c.source, c.qa_start, c.qa_end), 0.0)
            evidence = max(float(sim[i]), sc.qa * qa + sc.qa_own * float(sim[i]))
            near = any(p.source == c.source and p.passage_start <= c.start < p.passage_end for p in previous)
            scores[i] = evidence + sc.lexical * lex - sc.rank * (c.hit.rank - 1) + sc.continuity * near
            if (want_default or term) and gives(c.text, want_default, term):
                scores[i] += sc.asked_for
            if named and sc.term_section and section_term(c.section) in named:
                scores[i] += sc.term_section
                if want_default and sc.term_default and _STATES_DEFAULT.search(c.text):
                    scores[i] += sc.term_default
            if yes_no and takes_a_side(c.text):
                scores[i] += sc.yes_no
            if why and gives_a_reason(c.text):
                scores[i] += sc.why
        return cands, scores, sv

    def eligible(self, question: str, cands: Sequence[_Cand], hits: Sequence[Hit],
                 vocabulary: Vocabulary | None = None) -> list[bool] | None:
        """Which candidates can answer what the question asks for; None when the passages cannot at all:
        the question's focus noun ("the capital of ...") or the named thing it asks about ("... of France")
        appears in none of them, or it names a thing the corpus or the passages never mention (see
        `missing_names`)."""
        info = analyze(question)
        present = set(tokenize(" ".join(h.text for h in hits)))
        if info.focus and not set(tokenize(info.focus)) & present:
            return None
        if info.subject and not set(tokenize(" ".join(info.subject))) & present:
            return None
        # A reference entry names its parameter or function in the heading, not in every chunk under it.
        headings = set(tokenize(" ".join(t for h in hits for t in h.headings)))
        if info.names and self.missing_names(info.names, hits, present | headings, vocabulary):
            return None
        counted = set(tokenize(" ".join(info.counted)))
        out = []
        for c in cands:
            ok = has_type(c.text, info.expected)
            if ok and counted:
                ok = bool(counted & set(tokenize(c.text)))
            out.append(ok)
        return out

    def missing_names(self, found: Sequence[Name], hits: Sequence[Hit], present: set[str],
                      vocabulary: Vocabulary | None) -> list[Name]:
        """The question's names that the documents cannot be about. A name is missing when a word of it is
        in no chunk of the index (`vocabulary`); when its rare words are in none of the passages (`present`:
        the index words of the passages and their headings); or, for "Name N", when the corpus never writes
        that name and number (the passages decide without a vocabulary, or for a corpus too large to read).
        Words in a large share of all chunks (the corpus' own subject, such as "PostgreSQL" in its manual)
        never need to be in the passages."""
        rules = self.naming
        terms = {n: tokenize(_specific(n)) for n in found}
        df: dict[str, int] = {}
        total = 0
        if vocabulary is not None:
            df, total = vocabulary.term_counts(sorted({t for ts in terms.values() for t in ts}))
        missing: list[Name] = []
        versions: frozenset[tuple[str, str]] | set[tuple[str, str]] | None = None
        for n in found:
            toks = terms[n]
            if n.kind == "version" and rules.version:
                if versions is None and vocabulary is not None and rules.version_scope == "corpus":
                    versions = self.corpus_versions(vocabulary)
                if versions is None:
                    versions = version_mentions(" ".join(h.text for h in hits))
                if not mentions_version(versions, n):
                    missing.append(n)
                    continue
            if not toks:
                continue
            absent = [t for t in toks if df.get(t, 0) == 0] if df else []
            if absent and (rules.corpus == "any" or (rules.corpus == "all" and len(absent) == len(toks))):
                missing.append(n)
                continue
            rare = {t for t in toks if not total or df.get(t, 0) < rules.topic_share * total}
            if not rare or n.kind == "version" or (n.text.isupper() and not rules.acronyms):
                continue
            inside = rare & present
            if (rules.passages == "all" and inside != rare) or (rules.passages == "any" and not inside):
                missing.append(n)
        return missing

    def elsewhere(self, question: str, best: Hit, vocabulary: Vocabulary | None) -> bool:
        """Whether a proper name of the question ("Tcl", "Oracle", "Modula-3") is missing from the passage
        that holds the best sentence (its text and headings), though some passage has it: "How do I copy an
        object in Tcl?" finds the FAQ on copying objects in Python, and "Tcl" only in another passage. Names
        of code ("open()", "work_mem") are the corpus' own and may sit in another passage of a many-part
        question."""
        proper = [n for n in analyze(question).names if n.kind == "proper"]
        if not proper:
            return False
        there = set(tokenize(best.text)) | set(tokenize(" ".join(best.headings)))
        return bool(self.missing_names(proper, [best], there, vocabulary))

    def answer(self, question: str, hits: Sequence[Hit], doc_texts: Mapping[str, str],
               documents: Mapping[str, Document], history: Sequence[Turn] = (),
               vocabulary: Vocabulary | None = None) -> Answer:
        """`vocabulary` (the index's term statistics) lets the answer abstain on names the corpus never has."""
        t = time.perf_counter()
        cands, scores, sv = self.score(question, hits, doc_texts, documents, history)
        ok = self.eligible(question, cands, hits, vocabulary) if cands else None
        if ok is not None:
            scores = np.where(ok, scores, -1.0)
        best = float(scores.max()) if len(scores) else 0.0
        timings = {"answer_ms": 0.0}
        if (cands and ok is not None and best >= self.threshold and self.naming.best_passage
                and self.elsewhere(question, cands[int(np.argmax(scores))].hit, vocabulary)):
            ok = None
        if not cands or ok is None or best < self.threshold:
            timings["answer_ms"] = (time.perf_counter() - t) * 1000
            return Answer(question, ABSTAIN_TEXT, (), True, tuple(hits), "extractive", timings_ms=timings)
        chosen: list[int] = []
        for i in np.argsort(-scores):
            if len(chosen) >= self.max_sentences or scores[i] < max(self.threshold, best - self.scoring.spread):
                break
            if any(float(sv[i] @ sv[j]) > self.scoring.redundant for j in chosen):
                continue
            if chosen and cands[i].source != cands[chosen[0]].source and scores[i] < best - self.scoring.other_doc:
                continue  # another document must earn its place: mixed answers are more often wrong
            chosen.append(int(i))
        citations = []
        parts = []
        spans = [(cands[i].source, cands[i].start, cands[i].end) for i in chosen]
        # "Which algorithm is used by default?": when no chosen sentence states a default, the best one's
        # quote reaches on to the next sentence of its paragraph that does (answer/compose.py).
        finish = (_STATES_DEFAULT.search if _DEFAULT_Q.search(question)
                  and not any(_STATES_DEFAULT.search(cands[i].text) for i in chosen) else None)
        for n, i in enumerate(chosen, start=1):
            c = cands[i]
            start, end = c.start, c.end
            if self.scoring.compose:
                taken = [(a, b) for j, (src, a, b) in enumerate(spans) if j != n - 1 and src == c.source]
                start, end = compose(doc_texts[c.source], c.start, c.end, taken, finish if n == 1 else None)
                spans[n - 1] = (c.source, start, end)
            quote = doc_texts[c.source][start:end]
            doc = documents.get(c.source)
            headings = doc.heading_path(start) if doc else c.hit.headings
            page = doc.page_at(start) if doc else c.hit.page
            citations.append(Citation(n, c.source, start, end, quote, headings, page, min(start, c.hit.start),
                                      max(end, c.hit.end)))
            parts.append(f"{spoken(quote)} [{n}]")
        timings["answer_ms"] = (time.perf_counter() - t) * 1000
        return Answer(question, " ".join(parts), tuple(citations), False, tuple(hits), "extractive",
                      timings_ms=timings)

    def stream(self, question: str, hits: Sequence[Hit], doc_texts: Mapping[str, str],
               documents: Mapping[str, Document], history: Sequence[Turn] = (),
               vocabulary: Vocabulary | None = None) -> Iterator[str | Answer]:
        """The answer sentence by sentence, then the Answer itself."""
        ans = self.answer(question, hits, doc_texts, documents, history, vocabulary)
        # Sentence by sentence: split after each "[n]" marker, keeping the whitespace that follows it.
        pieces = re.split(r"(?<=\[\d\])(?=\s)|(?<=\[\d\d\])(?=\s)", ans.text) if not ans.abstained else [ans.text]
        yield from (p for p in pieces if p)
        yield ans
