"""The sentence-transformers model run by OpenVINO: exported once to IR (fp32, or int8 calibrated with NNCF),
then loaded without torch.

`export_openvino` converts the local model and writes a folder atomically: the IR, the tokenizer, and
`openvino_export.json` saying what it was made from. `export_problems` says why a folder cannot serve a
model (other weights, other backend, damaged files), so a caller reuses it or re-exports
(`ensure_openvino` does both). `OpenVINOEmbedder` is an `embed.Embedder` over such a folder: same
tokenisation (truncation at max_seq_length), mean pooling and L2 normalisation as sentence-transformers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..embed import resolve_model
from ..errors import ModelNotFoundError
from ..settings import DEFAULT_MODEL

FORMAT_VERSION = 1
METADATA = "openvino_export.json"
MODEL_XML = "model.xml"
MODEL_BIN = "model.bin"
TOKENIZER = "tokenizer.json"
FP32, INT8 = "openvino-fp32", "openvino-int8"
BACKENDS = (FP32, INT8)
CALIBRATION_SUBSET = 300  # texts NNCF collects activation statistics on
_TOKENIZER_EXTRAS = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_POOLING_FLAGS = ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                  "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")


class OpenVINOExportError(ModelNotFoundError):
    """An exported folder cannot serve the model (missing, stale or damaged), or the model cannot be exported."""


def _require(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModelNotFoundError(f"{package} is not installed: pip install {package}") from None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def texts_sha256(texts: Sequence[str]) -> str:
    """A hash of a list of texts that no other list shares (each text is length-prefixed)."""
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


# ---- the source model ------------------------------------------------------------------------------------

def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(model_name: str) -> dict[str, Any]:
    """What the export needs to know of a local sentence-transformers folder, checked to be something this
    backend reproduces exactly: a transformer, mean pooling, optionally Normalize, nothing else."""
    root = Path(resolve_model(model_name))
    if not (root / "modules.json").is_file():
        raise OpenVINOExportError(f"model {model_name}: {root} is not a local sentence-transformers folder "
                                  "(no modules.json); the export never downloads")
    modules = _read_json(root / "modules.json")
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise OpenVINOExportError(f"model {model_name}: modules {kinds} are not supported "
                                  "(Transformer, Pooling and Normalize are)")
    transformer = root / modules[0]["path"]
    pooling_cfg = root / modules[1]["path"] / "config.json"
    pooling = _read_json(pooling_cfg)
    mean = pooling.get("pooling_mode") == "mean" or (
        pooling.get("pooling_mode_mean_tokens") and not any(pooling.get(k) for k in _POOLING_FLAGS))
    if not mean:
        raise OpenVINOExportError(f"model {model_name}: only mean pooling is supported ({pooling_cfg})")
    st_cfg = root / "sentence_bert_config.json"
    st = _read_json(st_cfg) if st_cfg.is_file() else {}
    if st.get("do_lower_case"):
        raise OpenVINOExportError(f"model {model_name}: do_lower_case is not supported")
    files = [root / "modules.json", pooling_cfg, transformer / "config.json"]
    files += [st_cfg] if st_cfg.is_file() else []
    files += [p for n in (*_WEIGHTS, TOKENIZER, *_TOKENIZER_EXTRAS) if (p := transformer / n).is_file()]
    if not any(p.name in _WEIGHTS for p in files):
        raise OpenVINOExportError(f"model {model_name}: no weights in {transformer}")
    return {"root": root, "transformer": transformer, "files": files, "normalize": kinds[-1] == "Normalize",
            "max_seq_length": st.get("max_seq_length"), "dimension": pooling.get("word_embedding_dimension")}


_hashes: dict[tuple[str, int, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    """sha256 of a file, remembered per path, size, mtime and inode: a model is checked more than once per
    process (`ensure_openvino`, then the embedder), and hashing 90 MB each time adds up."""
    st = path.stat()
    key = (str(path.absolute()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _hashes:
        _hashes[key] = _sha256_file(path)
    return _hashes[key]


def source_files(model_name: str) -> dict[str, str]:
    """sha256 of each file of the source model the export reads (weights, configs, tokenizer), by path
    relative to the model folder."""
    src = _source(model_name)
    return {p.relative_to(src["root"]).as_posix(): _cached_sha256(p) for p in sorted(src["files"])}


def source_sha256(model_name: str) -> str:
    """One hash of the source model's files (`source_files`)."""
    return hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in source_files(model_name).items()).encode()).hexdigest()


# ---- export ----------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _export_lock(out_dir: Path) -> Iterator[None]:
    """One export at a time per parent folder (a lock on the folder itself: no lock file left behind);
    leftovers of a killed export are removed under the lock."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir.parent, os.O_RDONLY)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        for stale in out_dir.parent.iterdir():
            if stale.name.startswith((f".{out_dir.name}.tmp-", f".{out_dir.name}.old-")) and stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _quiet(enabled: bool, *, output: bool = False) -> Iterator[None]:
    """Tracer warnings and "Loading weights" bars off the console; with `output`, everything written to
    stdout and stderr too (NNCF's progress bars have no switch), so only around the call that needs it."""
    if not enabled:
        yield
        return
    import io
    import warnings

    from ..embed import _quiet_libraries

    _quiet_libraries()
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.ExitStack() as stack:
        warnings.simplefilter("ignore")
        if output:
            stack.enter_context(contextlib.redirect_stdout(sink))
            stack.enter_context(contextlib.redirect_stderr(sink))
        yield


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _calibration_sample(texts: Sequence[str], n: int) -> list[str]:
    """n texts spread evenly over the list (all of them if there are fewer): deterministic."""
    if len(texts) <= n:
        return list(texts)
    return [texts[int(i)] for i in np.linspace(0, len(texts) - 1, n).round().astype(int)]


def export_openvino(model_name: str, out_dir: Path, *, int8: bool, calibration_texts: Sequence[str] = (),
                    subset_size: int = CALIBRATION_SUBSET, preset: str | None = None, quiet: bool = True) -> Path:
    """Convert the local model to OpenVINO IR in `out_dir` (replacing what is there), int8 if asked, with
    activations calibrated on up to `subset_size` of `calibration_texts`. `preset` is NNCF's "mixed" (its
    default for transformers) or "performance". Nothing is visible in `out_dir` until all of it is written."""
    if int8 and not calibration_texts:
        raise ValueError("int8 export needs calibration_texts")
    t0 = time.perf_counter()
    src = _source(model_name)
    sources = source_files(model_name)
    fingerprint = source_sha256(model_name)
    out_dir = Path(out_dir).absolute()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch = _require("torch", "torch")
    ov = _require("openvino", "openvino")
    nncf = _require("nncf", "nncf") if int8 else None
    from transformers import AutoModel, AutoTokenizer

    with _export_lock(out_dir), _quiet(quiet):
        tmp = out_dir.with_name(f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
        tmp.mkdir()
        try:
            hf_tok = AutoTokenizer.from_pretrained(src["transformer"], local_files_only=True)
            if not hf_tok.is_fast:
                raise OpenVINOExportError(f"model {model_name}: no fast tokenizer")
            names = ["input_ids", "attention_mask"]
            names += ["token_type_ids"] if "token_type_ids" in hf_tok.model_input_names else []
            model = AutoModel.from_pretrained(src["transformer"], local_files_only=True).eval()
            max_len = int(src["max_seq_length"] or min(hf_tok.model_max_length,
                                                       model.config.max_position_embeddings))
            # Padding in the example: tracing then keeps the attention-mask path (an all-ones example can
            # be traced without it).
            ex = hf_tok(["An example sentence to trace.", "Short."], padding=True, return_tensors="pt")
            with torch.no_grad():
                ir = ov.convert_model(_token_embeddings(model), example_input={n: ex[n] for n in names},
                                      input=[(n, ov.PartialShape([-1, -1]), ov.Type.i64) for n in names])
            ir.outputs[0].get_tensor().set_names({"token_embeddings"})
            tokenizer = hf_tok.backend_tokenizer
            calibration = None
            if int8:
                sample = _calibration_sample(calibration_texts, subset_size)
                items = [_feeds([e.ids], names, 0) for e in _truncating(tokenizer, max_len).encode_batch(sample)]
                kwargs: dict[str, Any] = {"model_type": nncf.ModelType.TRANSFORMER, "subset_size": len(items)}
                if preset:
                    kwargs["preset"] = nncf.QuantizationPreset(preset)
                with _quiet(quiet, output=True):
                    ir = nncf.quantize(ir, nncf.Dataset(items), **kwargs)
                calibration = {"texts": len(calibration_texts), "used": len(sample), "subset_size": subset_size,
                               "sha256": texts_sha256(calibration_texts), "preset": preset or "default",
                               "model_type": "transformer"}
            ov.save_model(ir, tmp / MODEL_XML, compress_to_fp16=False)
            (tmp / TOKENIZER).write_text(tokenizer.to_str(), encoding="utf-8")
            for name in _TOKENIZER_EXTRAS:
                if (src["transformer"] / name).is_file():
                    shutil.copyfile(src["transformer"] / name, tmp / name)
            files = {p.name: {"size": p.stat().st_size, "sha256": _sha256_file(p)}
                     for p in sorted(tmp.iterdir()) if p.is_file()}
            meta = {
                "format_version": FORMAT_VERSION, "backend": INT8 if int8 else FP32, "model_name": model_name,
                "source_sha256": fingerprint, "source_files": sources, "inputs": names,
                "pad_token_id": int(hf_tok.pad_token_id or 0),
                "max_seq_length": max_len, "dimension": int(model.config.hidden_size), "pooling": "mean",
                "normalize": True, "source_normalize": src["normalize"], "calibration": calibration,
                "versions": {"openvino": ov.get_version(), "nncf": nncf.__version__ if nncf else None,
                             "torch": torch.__version__, "transformers": _version("transformers")},
                "files": files, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "export_seconds": round(time.perf_counter() - t0, 2),
            }
            (tmp / METADATA).write_text(json.dumps(signed(meta), indent=1, sort_keys=True), encoding="utf-8")
            for p in tmp.iterdir():
                _fsync(p)
            _fsync(tmp)
            if out_dir.exists():
                old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
                os.replace(out_dir, old)
                os.replace(tmp, out_dir)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, out_dir)
            _fsync(out_dir.parent)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _token_embeddings(model: Any) -> Any:
    """The transformer wrapped to return its last hidden state only: what sentence-transformers pools."""
    import torch

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state

    return TokenEmbeddings().eval()


# ---- validity --------------------------------------------------------------------------------------------

_REQUIRED = {"format_version": int, "backend": str, "source_sha256": str, "inputs": list, "pad_token_id": int,
             "max_seq_length": int, "dimension": int, "files": dict}


def signed(meta: dict[str, Any]) -> dict[str, Any]:
    """The metadata with a hash of the rest of it, so an edited or damaged file is told from a valid one."""
    body = {k: v for k, v in meta.items() if k != "metadata_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {**body, "metadata_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """The export's metadata, checked for shape; OpenVINOExportError says what is wrong."""
    path = Path(model_dir) / METADATA
    try:
        meta = _read_json(path)
    except FileNotFoundError:
        raise OpenVINOExportError(f"{model_dir}: no {METADATA} (not an OpenVINO export)") from None
    except (OSError, ValueError) as e:
        raise OpenVINOExportError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict):
        raise OpenVINOExportError(f"{path}: not a JSON object")
    if meta.get("metadata_sha256") != signed(meta)["metadata_sha256"]:
        raise OpenVINOExportError(f"{path}: does not match its checksum (edited or damaged)")
    for key, kind in _REQUIRED.items():
        if not isinstance(meta.get(key), kind):
            raise OpenVINOExportError(f"{path}: {key} is missing or not a {kind.__name__}")
    if meta["format_version"] != FORMAT_VERSION:
        raise OpenVINOExportError(f"{path}: format {meta['format_version']}, this version reads {FORMAT_VERSION}")
    if not {MODEL_XML, MODEL_BIN, TOKENIZER} <= set(meta["files"]):
        raise OpenVINOExportError(f"{path}: files must list {MODEL_XML}, {MODEL_BIN} and {TOKENIZER}")
    return meta


def export_problems(model_dir: Path, model_name: str, *, backend: str | None = None) -> list[str]:
    """Why `model_dir` cannot serve `model_name` with `backend` (any backend if None); empty if it can."""
    try:
        meta = read_metadata(model_dir)
    except OpenVINOExportError as e:
        return [str(e)]
    problems = []
    if backend is not None and meta["backend"] != backend:
        problems.append(f"backend: folder has {meta['backend']}, wanted {backend}")
    if meta["backend"] not in BACKENDS:
        problems.append(f"backend: unknown {meta['backend']!r}")
    try:
        if meta["source_sha256"] != source_sha256(model_name):
            now, then = source_files(model_name), meta.get("source_files") or {}
            changed = sorted(k for k in now.keys() | then.keys() if now.get(k) != then.get(k)) or ["?"]
            problems.append(f"source: made from another {model_name} ({', '.join(changed)} differ)")
    except ModelNotFoundError as e:
        problems.append(str(e))
    for name, want in meta["files"].items():
        p = Path(model_dir) / name
        if not isinstance(want, dict) or not p.is_file():
            problems.append(f"{name}: missing")
        elif p.stat().st_size != want.get("size") or _cached_sha256(p) != want.get("sha256"):
            problems.append(f"{name}: changed since the export")
    return problems


def is_valid_export(model_dir: Path, model_name: str, *, backend: str) -> bool:
    return not export_problems(model_dir, model_name, backend=backend)


def ensure_openvino(model_name: str, out_dir: Path, *, int8: bool, calibration_texts: Sequence[str] = ()) -> Path:
    """`out_dir` if it is a valid export of the model for this backend, else a fresh export there."""
    if is_valid_export(out_dir, model_name, backend=INT8 if int8 else FP32):
        return Path(out_dir)
    return export_openvino(model_name, out_dir, int8=int8, calibration_texts=calibration_texts)


# ---- inference -------------------------------------------------------------------------------------------

def _truncating(tokenizer: Any, max_len: int) -> Any:
    """A private copy that truncates like sentence-transformers (right side, at max_seq_length), no padding."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer.to_str())
    tok.enable_truncation(max_len)
    tok.no_padding()
    return tok


def _feeds(ids: Sequence[Sequence[int]], names: Sequence[str], pad_id: int) -> dict[str, np.ndarray]:
    """Right-padded int64 inputs for one batch."""
    width = max(len(x) for x in ids)
    arr = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, x in enumerate(ids):
        arr[i, :len(x)] = x
        mask[i, :len(x)] = 1
    out = {"input_ids": arr, "attention_mask": mask}
    if "token_type_ids" in names:
        out["token_type_ids"] = np.zeros_like(arr)
    return out


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' mean pooling, then its Normalize: sum(h * mask) / max(sum(mask), 1e-9), then
    x / max(|x|, 1e-12)."""
    m = mask.astype(np.float32)
    summed = np.einsum("bsd,bs->bd", hidden.astype(np.float32, copy=False), m)
    pooled = summed / np.maximum(m.sum(axis=1, keepdims=True), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


class OpenVINOEmbedder:
    """An Embedder over an exported folder; needs openvino, tokenizers and numpy, not torch.

    Defaults chosen by benchmarks/bench_encoders.py on 2 cores: the LATENCY hint (one stream on all cores)
    embeds bulk text about as fast as THROUGHPUT with a stream per core and one query twice as fast;
    batches of at most `max_batch_tokens` padded word pieces beat 64 long texts at once.
    `inference_precision` "f32" keeps the export's arithmetic on every CPU (OpenVINO would otherwise pick
    bf16 where the CPU has it); "bf16" is faster there, and `backend` then says so.
    Thread-safe: calls are serialised by a lock."""

    def __init__(self, model_dir: Path, model_name: str = DEFAULT_MODEL, *, performance_hint: str = "LATENCY",
                 num_streams: int | None = None, threads: int | None = None, inference_precision: str = "f32",
                 max_batch_tokens: int | None = 4096, verify: bool = True) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        ov = _require("openvino", "openvino")
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir)
        if verify and (problems := export_problems(self.model_dir, model_name)):
            raise OpenVINOExportError(f"{self.model_dir}: " + "; ".join(problems))
        meta = read_metadata(self.model_dir)
        self.metadata = meta
        self.model_id = model_name
        self.dimension = meta["dimension"]
        self.max_tokens = meta["max_seq_length"]
        self._names = list(meta["inputs"])
        self._pad = meta["pad_token_id"]
        base = Tokenizer.from_file(str(self.model_dir / TOKENIZER))
        self._tokenizer = _truncating(base, self.max_tokens)
        self._counter = Tokenizer.from_str(base.to_str())
        self._counter.no_truncation()
        self._counter.no_padding()
        config: dict[str, Any] = {"PERFORMANCE_HINT": performance_hint, "INFERENCE_PRECISION_HINT": inference_precision}
        if num_streams is not None:
            config["NUM_STREAMS"] = str(num_streams)
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        self._compiled = ov.Core().compile_model(str(self.model_dir / MODEL_XML), "CPU", config)
        self.config = {k: (v.get_type_name() if isinstance(v, ov.Type) else str(v)) for k in
                       ("PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT")
                       if (v := self._compiled.get_property(k)) is not None}
        precision = {ov.Type.bf16: "bf16", ov.Type.f16: "f16"}.get(
            self._compiled.get_property("INFERENCE_PRECISION_HINT"), "f32")
        self.backend = meta["backend"] if precision == "f32" else f"{meta['backend']}+{precision}"
        jobs = int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._queue = ov.AsyncInferQueue(self._compiled, max(1, jobs))
        self._queue.set_callback(self._done)
        self.max_batch_tokens = max_batch_tokens
        self._lock = threading.Lock()

    def _batches(self, lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
        """Indices longest first, in batches of at most `batch_size` texts and `max_batch_tokens` padded
        word pieces (smaller batches of long texts are faster here: their activations stay in cache)."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        s = 0
        while s < len(order):
            n = max(1, batch_size)
            if self.max_batch_tokens:
                n = max(1, min(n, self.max_batch_tokens // max(1, lengths[order[s]])))
            yield order[s:s + n]
            s += n

    @staticmethod
    def _done(request: Any, job: tuple[np.ndarray, np.ndarray, np.ndarray, list[BaseException]]) -> None:
        out, rows, mask, errors = job
        try:
            out[rows] = mean_pool(request.get_output_tensor(0).data, mask)
        except BaseException as e:  # noqa: BLE001  (re-raised by embed, not lost in OpenVINO's thread)
            errors.append(e)

    def embed(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        errors: list[BaseException] = []
        with self._lock:
            ids = [e.ids for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=True)]
            # Longest first, so each batch pads to a similar length; rows go back to input order via `out`.
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(ids), unit="text")
            try:
                for batch in self._batches([len(x) for x in ids], batch_size):
                    rows = np.array(batch)
                    feeds = _feeds([ids[i] for i in rows], self._names, self._pad)
                    self._queue.start_async(feeds, (out, rows, feeds["attention_mask"], errors))
                    if bar is not None:
                        bar.update(len(rows))
            finally:
                self._queue.wait_all()
                if bar is not None:
                    bar.close()
        if errors:
            raise errors[0]
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._counter.encode_batch(list(texts), add_special_tokens=True)]
