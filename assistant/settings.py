"""One typed settings object. Every field is described; unknown keys are rejected;
environment variables named ASSISTANT_<FIELD> override the defaults, and explicit arguments override both."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .redact import mask_url

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BACKENDS = ("torch", "openvino-int8", "openvino-fp32")


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    docs_dir: Path = _f(Path("documents"), "Folder of documents to index.")
    index_dir: Path = _f(Path("index"), "Folder that holds the built index (with the local store; any store "
                                        "keeps its embedding cache and model exports there).")
    store: str = _f("local", "Where the index lives: local (the files under index_dir) or a PostgreSQL URL, "
                             "postgresql://user:pass@host:port/db, with the pgvector extension; many servers can "
                             "share one database.")
    model: str = _f(DEFAULT_MODEL, "sentence-transformers model name or path; the default is bundled.")
    backend: str = _f("openvino-fp32", "How the model runs: openvino-fp32 (the model exported to OpenVINO "
                                       "beside the index: same vectors as torch, x3.6 faster here), torch "
                                       "(sentence-transformers), or openvino-int8 (quantized on the corpus' own "
                                       "chunks: x8.3, but quote recall fell on the Python docs).")
    pg_lexical: str = _f("bm25", "Lexical ranking of a PostgreSQL store: bm25 (the local store's BM25, computed in "
                                 "SQL over stored term statistics) or fts (PostgreSQL full-text search, ts_rank_cd).")
    chunk_tokens: int = _f(128, "Target chunk size in tiktoken (cl100k) tokens.")
    chunk_overlap: int = _f(24, "Tokens of context repeated between neighbouring chunks.")
    retrieval: str = _f("hybrid", "hybrid, dense or bm25.")
    k: int = _f(5, "Passages returned by search and given to the answerer.")
    fetch_k: int = _f(50, "Candidates each retriever contributes before fusion.")
    rrf_k: int = _f(10, "Reciprocal-rank-fusion constant: small, so the top of one ranking is not "
                          "outvoted by passages both rankings hold only halfway down.")
    dense_weight: float = _f(1.0, "Weight of the dense ranking in fusion.")
    bm25_weight: float = _f(1.0, "Weight of the BM25 ranking in fusion.")
    bm25_coverage: float = _f(0.5, "BM25's weight is halved for a query whose best BM25 hits hold less than this "
                                   "share of its IDF mass (paraphrases lean on the dense ranking); 0: off.")
    context_weight: float = _f(0.6, "Weight of a follow-up's second query (the previous question and this one) "
                                    "against the question alone (1.0).")
    followup_weight: float = _f(2.0, "Weight of a follow-up searched with its pronoun replaced by the previous "
                                     "question's subject (\"on it\" -> \"on hot standby\"); 0: off.")
    merge_gap: int = _f(800, "Passages of one section at most this many characters apart are joined into one "
                             "(the text between them included); 0: only overlapping or touching ones.")
    merge_touch: int = _f(64, "Passages at most this many characters apart with only whitespace between are "
                              "joined whatever their sections (a section's end and the next one's heading), "
                              "within merge_max_chars; 0: off.")
    merge_max_chars: int = _f(1800, "Longest passage such a join may make (characters).")
    duplicate_threshold: float = _f(0.9, "Passages this similar (cosine) to a better one elsewhere are "
                                          "dropped, so copies of one text do not fill the results; 1 keeps all.")
    abstain_threshold: float = _f(0.34, "Evidence score under which the answer abstains.")
    answer_sentences: int = _f(3, "Most sentences an extractive answer quotes.")
    asked_for_weight: float = _f(0.1, "Extractive answers: bonus for a sentence that holds what the question asks "
                                      "for (a default, the definition of the term asked about).")
    term_section_weight: float = _f(0.3, "Extractive answers: bonus for a sentence in the section of the term the "
                                         "question names (work_mem, archive_command, str.join()).")
    term_default_weight: float = _f(0.3, "Extractive answers: a further bonus for a sentence of that term's section "
                                         "that states its default (\"It defaults to 64MB\"), when the question "
                                         "asks for the default.")
    compose_quotes: bool = _f(True, "Extractive answers: quote a sentence together with the sentence it leans on "
                                    "or that finishes it (\"That means ...\") and the code it introduces (\"...:\").")
    mode: str = _f("extractive", "Answer mode: extractive or llm.")
    llm_base_url: str = _f("", "OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1 (empty: no LLM).")
    llm_model: str = _f("", "Model name sent to the LLM endpoint.")
    llm_api_key: str = _f("", "Bearer key for the LLM endpoint, if it needs one.")
    llm_timeout: float = _f(60.0, "Seconds to wait for the LLM endpoint.")
    host: str = _f("127.0.0.1", "Address the web chat binds to.")
    port: int = _f(7860, "Port of the web chat.")
    auth_user: str = _f("", "Username for the web chat (empty: no login).")
    auth_password: str = _f("", "Password for the web chat.")
    chat_db: str = _f("", "SQLite file of the web chat's saved conversations and feedback (empty: chat.sqlite3 "
                          "in the index folder).")
    api_token: str = _f("", "Bearer token the HTTP APIs (REST, OpenAI-compatible, MCP over HTTP) accept "
                            "besides the chat's login (empty: none).")
    max_upload_mb: float = _f(20.0, "Largest document the web chat accepts.")
    max_file_mb: float = _f(50.0, "Largest file indexed from the documents folder; bigger ones are skipped "
                                  "with a reason naming the file and this limit.")
    progressive_min_chunks: int = _f(512, "A build with more chunks than this to embed makes the index searchable "
                                          "first (lexically) and fills in the dense vectors behind it.")
    embed_cache_mb: float = _f(2048.0, "Disk bound of the embedding cache (vectors by text, beside the index).")
    sentence_vectors: bool = _f(True, "Embed every quotable sentence when a document is indexed (sentences.sqlite "
                                      "beside the index), so that answers do not embed at question time.")
    sentence_store_mb: float = _f(4096.0, "Disk bound of the stored sentence vectors; beyond it the least recently "
                                          "stored go, and their sentences are embedded when quoted.")
    ann_threshold: int = _f(100_000, "A segment with this many vectors or more is searched by an approximate "
                            "(IVF) index, its candidates rescored exactly; below it, search is exact. 0: always "
                            "exact.")
    ann_nprobe: int = _f(0, "IVF lists an approximate search probes; 0: 3/32 of them, at least 256 "
                         "(recall@10 0.97-0.98 against exact search, benchmarks/bench_ann.py and bench_scale.py).")
    max_question_chars: int = _f(4000, "Longest question (or search query) accepted, in characters.")
    max_history_turns: int = _f(20, "Most earlier turns a conversation may send with a question.")
    max_k: int = _f(50, "Most passages a search or an answer may ask for (k).")
    verbose: bool = _f(False, "Show library logs and progress bars (model loading, etc.) on the console.")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("Path",) and not isinstance(value, Path):
                object.__setattr__(self, f.name, Path(value))
        if self.chunk_tokens < 16:
            raise ConfigError(f"chunk_tokens: must be at least 16, got {self.chunk_tokens}")
        if not 0 <= self.chunk_overlap < self.chunk_tokens // 2:
            raise ConfigError(
                f"chunk_overlap: must be between 0 and half of chunk_tokens ({self.chunk_tokens // 2}), "
                f"got {self.chunk_overlap}")
        if self.store != "local" and not self.store.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"store: must be local or a postgresql:// URL, got {mask_url(self.store)!r}"[:200])
        if self.pg_lexical not in ("bm25", "fts"):
            raise ConfigError(f"pg_lexical: must be bm25 or fts, got {self.pg_lexical!r}")
        if self.retrieval not in ("hybrid", "dense", "bm25"):
            raise ConfigError(f"retrieval: must be hybrid, dense or bm25, got {self.retrieval!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend: must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.mode not in ("extractive", "llm"):
            raise ConfigError(f"mode: must be extractive or llm, got {self.mode!r}")
        if self.progressive_min_chunks < 0:
            raise ConfigError(f"progressive_min_chunks: must be at least 0, got {self.progressive_min_chunks}")
        if self.ann_threshold < 0 or self.ann_nprobe < 0:
            raise ConfigError(f"ann_threshold and ann_nprobe: must be at least 0, got "
                              f"{self.ann_threshold} and {self.ann_nprobe}")
        if self.fetch_k < 1:
            raise ConfigError(f"fetch_k: must be at least 1, got {self.fetch_k}")
        for name in ("embed_cache_mb", "sentence_store_mb", "max_upload_mb", "max_file_mb", "max_question_chars",
                     "max_history_turns", "max_k"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive, got {getattr(self, name)}")
        if not 1 <= self.k <= self.max_k:
            raise ConfigError(f"k: must be between 1 and {self.max_k} (max_k), got {self.k}")

    @property
    def chat_db_path(self) -> Path:
        return Path(self.chat_db) if self.chat_db else self.index_dir / "chat.sqlite3"

    @classmethod
    def load(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ASSISTANT_* environment variables, then `overrides` (None values are ignored)."""
        env = os.environ if env is None else env
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, f in known.items():
            raw = env.get(f"ASSISTANT_{name.upper()}")
            if raw is not None:
                values[name] = parse_value(name, f.type, raw)
        for name, value in overrides.items():
            if name not in known:
                raise ConfigError(f"unknown setting {name!r}; known: {', '.join(sorted(known))}")
            if value is not None:
                values[name] = parse_value(name, known[name].type, value) if isinstance(value, str) else value
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown setting {sorted(unknown)[0]!r}")
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @staticmethod
    def describe() -> dict[str, str]:
        return {f.name: f.metadata["help"] for f in fields(Settings)}


def parse_value(name: str, type_name: Any, raw: str) -> Any:
    """A setting's text (environment, config file, `--compare KEY=VALUE`) as its typed value."""
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        if type_name == "Path":
            return Path(raw)
        if type_name == "bool":
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        return raw
    except ValueError:
        raise ConfigError(f"{name}: expected {type_name}, got {raw!r}") from None
