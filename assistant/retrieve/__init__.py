"""Hybrid retrieval: dense (FAISS) and BM25 rankings fused with reciprocal rank fusion."""

from .fusion import Candidate, merge_overlapping, rrf
from .retriever import Retriever

__all__ = ["Candidate", "Retriever", "merge_overlapping", "rrf"]
