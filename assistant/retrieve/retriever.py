"""The Retriever: loads an index once and answers many queries, from any number of threads."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np

from .. import validate
from ..embed import Embedder, LazyEmbedder, embedder_for
from ..errors import IndexMismatchError, InputError
from ..index.build import wanted_manifest
from ..index.fill import backend_of
from ..index.postings import idf
from ..index.reader import DocInfo
from ..index.sentvec import SentenceLookup
from ..index.store import Reader, store_for
from ..index.terms import tokenize
from ..records import Hit
from ..settings import Settings
from .followup import resolve
from .fusion import Candidate, drop_near_duplicates, merge_overlapping, rrf

LOW_COVERAGE = 0.5  # BM25's weight for a query whose BM25 hits hold little of it (settings.bm25_coverage)


class Retriever:
    def __init__(self, reader: Reader, embedder: Embedder, settings: Settings) -> None:
        self.settings = settings
        self.reader = reader
        self.embedder = embedder
        # A model that is not loaded yet (LazyEmbedder) is checked when it is first needed, so a server can
        # answer its first page while the model loads.
        self._checked = False
        # Sentence vectors the index stored (index/sentvec.py), read-only and by text.
        self.sentences = SentenceLookup(settings.index_dir, embedder.model_id, backend_of(embedder),
                                        reader.manifest.dimension) if settings.sentence_vectors else None
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._recent_lock = threading.Lock()
        if not isinstance(embedder, LazyEmbedder) or embedder.loaded:
            self._check_model()

    @classmethod
    def open(cls, settings: Settings, embedder: Embedder | None = None) -> Retriever:
        """Load the index of settings.store (local: settings.index_dir), refusing one built with another model
        or chunk settings."""
        model_id = embedder.model_id if embedder is not None else settings.model
        emb = embedder if embedder is not None else embedder_for(settings)
        wanted = wanted_manifest(settings, model_id, backend=str(getattr(emb, "backend", "torch")))
        reader = store_for(settings).open(wanted)
        return cls(reader, emb, settings)

    # -- documents -------------------------------------------------------------------------------------
    def documents(self) -> list[DocInfo]:
        return list(self.reader.doc_infos)

    def document_text(self, source: str) -> str:
        try:
            return self.reader.doc_texts[source]
        except KeyError:
            raise KeyError(f"{source}: not in the index") from None

    @property
    def doc_texts(self) -> Mapping[str, str]:
        """Document texts by path, read from the index on demand."""
        return self.reader.doc_texts

    @property
    def dense_index(self) -> str:
        """Which index answers dense search ("exact", or the ANN that does)."""
        return self.reader.dense_index

    # -- search ----------------------------------------------------------------------------------------
    def search(self, query: str, k: int | None = None, *, context: str = "",
               retrieval: str | None = None) -> list[Hit]:
        return self.search_with_timings(query, k, context=context, retrieval=retrieval)[0]

    def search_with_timings(self, query: str, k: int | None = None, *, context: str = "",
                            retrieval: str | None = None) -> tuple[list[Hit], dict[str, float]]:
        """Top `k` passages for `query`. `context` (e.g. the previous question of a conversation) is searched
        together with the query as a second, lower-weighted ranking, so follow-ups find their subject.
        An empty or too long query, or a k out of bounds, raises InputError."""
        s = self.settings
        query = validate.check_text(s, query, "query")
        k = validate.check_k(s, k) or s.k
        context = context[: s.max_question_chars] if isinstance(context, str) else ""
        if retrieval not in (None, "hybrid", "dense", "bm25"):
            raise InputError(f"retrieval: must be hybrid, dense or bm25, got {retrieval!r}"[:120])
        mode = retrieval or s.retrieval
        queries = [query] + ([f"{context} {query}"] if context.strip() else [])
        qweights = [1.0, s.context_weight][: len(queries)]
        if context.strip() and s.followup_weight > 0 and (resolved := resolve(query, context)) is not None:
            queries.append(resolved)
            qweights.append(s.followup_weight)
        timings: dict[str, float] = {}
        rankings: list[Sequence[int]] = []
        weights: list[float] = []
        dense: dict[int, float] = {}  # by chunk key (IndexReader)
        lexical: dict[int, float] = {}
        fetch = max(s.fetch_k, k)
        if mode in ("hybrid", "dense"):
            t = time.perf_counter()
            qv = self.embed_queries(queries)
            timings["embed_ms"] = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            found = self.reader.dense(qv, fetch)
            timings["dense_ms"] = (time.perf_counter() - t) * 1000
            for qi, w in enumerate(qweights):
                for key, sc in found[qi]:
                    if qi == 0:
                        dense[key] = sc
                    else:
                        dense.setdefault(key, sc)
                rankings.append([key for key, _ in found[qi]])
                weights.append(w * (s.dense_weight if mode == "hybrid" else 1.0))
        if mode in ("hybrid", "bm25"):
            t = time.perf_counter()
            for q, w in zip(queries, qweights, strict=True):
                terms = tokenize(q)
                res = self.reader.bm25(terms, fetch)
                for key, sc in res:
                    lexical.setdefault(key, sc)
                rankings.append([key for key, _ in res])
                lean = (mode == "hybrid" and s.bm25_coverage > 0 and bool(res)
                        and self.coverage(terms, [key for key, _ in res[:3]]) < s.bm25_coverage)
                weights.append(w * (s.bm25_weight * (LOW_COVERAGE if lean else 1.0) if mode == "hybrid" else 1.0))
            timings["bm25_ms"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        fused = rrf(rankings, weights, s.rrf_k)
        # Only the head of the fused list can reach the k hits (after merging and near-duplicate removal,
        # which drops at most a few): its chunks are read from the index, the tail never is.
        head_keys = [key for key, _ in fused[: max(8 * k, 2 * fetch)]]
        chunks = self.reader.chunks(head_keys)
        cands = [Candidate(chunks[key], score, dense.get(key), lexical.get(key))
                 for key, score in fused[: len(head_keys)]]
        if s.duplicate_threshold < 1.0 and cands:
            keys = head_keys[: 4 * k]
            head, rest = cands[: 4 * k], cands[4 * k:]  # the k hits almost always come from the head
            has, vecs = self.reader.vectors(keys)
            complete = bool(has.all())
            if not complete:  # only chunks that have a vector can be compared; the others pass as they are
                rest = [c for c, h in zip(head, has, strict=True) if not h] + rest
                head = [c for c, h in zip(head, has, strict=True) if h]
            cands = drop_near_duplicates(head, vecs, s.duplicate_threshold) + rest
            if not complete:
                cands.sort(key=lambda c: -c.score)  # stable: fused order among equal scores
        hits = merge_overlapping(cands, self.reader.doc_texts, k, s.merge_gap, s.merge_max_chars, s.merge_touch)
        timings["fuse_ms"] = (time.perf_counter() - t) * 1000
        return hits, timings

    def coverage(self, terms: Sequence[str], keys: Sequence[int]) -> float:
        """The largest share of the query's IDF mass that one of these BM25 hits holds, over the query words
        the index has at all (a word no chunk holds says nothing about BM25's hits). Low for a paraphrase
        that shares few words with the manual: its BM25 hits matched common words only."""
        df, total_chunks = self.reader.term_counts(sorted(set(terms)))
        present = {t: n for t, n in df.items() if n > 0}
        if not present:
            return 0.0
        weight = {t: idf(n, total_chunks) for t, n in present.items()}
        mass = sum(weight.values()) or 1.0
        chunks = self.reader.chunks(list(keys))
        best = 0.0
        for key in keys:
            c = chunks.get(key)
            if c is not None:
                have = set(tokenize(c.text))
                best = max(best, sum(v for t, v in weight.items() if t in have) / mass)
        return best

    def dense_status(self) -> tuple[int, int]:
        """(chunks with a dense vector, chunks): equal once the index is complete."""
        m = self.reader.manifest
        return m.dense_count, m.chunks

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of `texts`, one batch (sentences, passages)."""
        if not self._checked:
            self._check_model()
        return self.embedder.embed(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of queries, each embedded alone and the last few remembered by their exact text: an
        answer scores its sentences against the vector its search just made, and a vector never depends
        on which texts shared its batch (padding changes the last bits), so a query ranks the same whether
        or not its vector was remembered."""
        if not texts:
            return self.embed(texts)
        with self._recent_lock:
            got = [self._recent.get(t) for t in texts]
            for t, v in zip(texts, got, strict=True):
                if v is not None:
                    self._recent.move_to_end(t)
        for i, t in enumerate(texts):
            if got[i] is None:
                got[i] = self.embed([t])[0]
                with self._recent_lock:
                    self._recent[t] = got[i]
                    while len(self._recent) > 64:
                        self._recent.popitem(last=False)
        return np.stack(got)  # type: ignore[arg-type]

    def _check_model(self) -> None:
        dim, want = self.embedder.dimension, self.reader.manifest.dimension
        if dim != want:
            raise IndexMismatchError(
                f"index in {self.settings.index_dir} has {want}-d vectors, model {self.embedder.model_id} makes "
                f"{dim}-d ones: rebuild with `assistant index --rebuild`")
        self._checked = True
