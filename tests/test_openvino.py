"""The OpenVINO backend against the real bundled model: vectors match torch fp32 (int8: closely), tokens are
counted and truncated the same way, outputs keep the input order, exports are atomic and checked."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import PYDOCS, ROOT, require

pytestmark = pytest.mark.slow

MODEL = "all-MiniLM-L6-v2"


def paragraphs(rel: str, n: int) -> list[str]:
    """The first n paragraphs of a Python-docs source with some words in them."""
    text = (require(PYDOCS, "python3.11-doc") / rel).read_text(encoding="utf-8")
    out = [p.strip() for p in text.split("\n\n") if len(p.split()) >= 8]
    assert len(out) >= n
    return out[:n]


@pytest.fixture(scope="module")
def ov():
    from assistant.backends import openvino

    return openvino


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory, ov) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("openvino")
    calibration = paragraphs("faq/programming.rst.txt", 64)
    return {"fp32": ov.export_openvino(MODEL, root / "fp32", int8=False),
            "int8": ov.export_openvino(MODEL, root / "int8", int8=True, calibration_texts=calibration)}


@pytest.fixture(scope="module")
def fp32(exports, ov):
    return ov.OpenVINOEmbedder(exports["fp32"], MODEL)


@pytest.fixture(scope="module")
def int8(exports, ov):
    return ov.OpenVINOEmbedder(exports["int8"], MODEL)


def pieces(words: list[str], n: int) -> str:
    """The shortest prefix of `words` that is at least n word pieces long (special tokens included)."""
    from tokenizers import Tokenizer

    from assistant.embed import resolve_model

    tok = Tokenizer.from_file(str(Path(resolve_model(MODEL)) / "tokenizer.json"))
    tok.no_truncation()
    lens = [len(e.ids) for e in tok.encode_batch([" ".join(words[:i]) for i in range(1, len(words) + 1)])]
    return " ".join(words[:next(i for i, k in enumerate(lens, 1) if k >= n)])


def long_text() -> str:
    """About 450 word pieces (the model reads at most 512), and what follows piece 256 is about something
    else entirely: an embedder that did not truncate there would give another vector."""
    head = pieces(" ".join(paragraphs("tutorial/controlflow.rst.txt", 30)).split(), 270)
    return head + " " + " ".join(["Tomatoes, basil and olive oil make a summer salad."] * 15)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def test_fp32_vectors_match_torch(fp32, real_embedder) -> None:
    words = " ".join(paragraphs("tutorial/classes.rst.txt", 20)).split()
    texts = ["How do I read a file line by line?", "x", "", *paragraphs("tutorial/inputoutput.rst.txt", 5),
             pieces(words, 200)]  # longer than the 128 the bundled tokenizer.json truncates at
    assert 200 <= real_embedder.count_tokens(texts)[-1] <= 256
    got, want = fp32.embed(texts), real_embedder.embed(texts)
    assert got.dtype == np.float32 and got.shape == (len(texts), 384)
    assert cosines(got, want).min() > 0.999
    assert (fp32.backend, fp32.model_id, fp32.dimension, fp32.max_tokens) == ("openvino-fp32", MODEL, 384, 256)


def test_int8_vectors_are_close_and_normalised(int8, real_embedder) -> None:
    texts = paragraphs("tutorial/datastructures.rst.txt", 40)  # not the calibration texts
    got, want = int8.embed(texts), real_embedder.embed(texts)
    assert int8.backend == "openvino-int8"
    assert got.dtype == np.float32 and got.shape == (40, 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    c = cosines(got, want)
    assert c.mean() > 0.97 and c.min() > 0.9
    assert c.mean() < 0.99999  # it is quantized: not the fp32 model under another name


def test_embedders_satisfy_the_protocol_and_handle_nothing(fp32, int8) -> None:
    from assistant.embed import Embedder

    for e in (fp32, int8):
        assert isinstance(e, Embedder)
        assert e.embed([]).shape == (0, 384) and e.embed([]).dtype == np.float32
        assert e.count_tokens([]) == []


def test_count_tokens_equals_the_torch_embedders(fp32, int8, real_embedder) -> None:
    texts = ["", " ", "  leading and trailing  ", "Ünïcödé 日本語 🙂", "a\u00a0b\u200bc\tq", long_text(),
             *paragraphs("howto/sorting.rst.txt", 10)]
    want = real_embedder.count_tokens(texts)
    assert fp32.count_tokens(texts) == want and int8.count_tokens(texts) == want
    assert max(want) > 400  # counted in full, not truncated


def test_a_long_text_is_truncated_like_sentence_transformers(exports, fp32, ov, real_embedder) -> None:
    text = long_text()
    assert 400 < real_embedder.count_tokens([text])[0] <= 512
    want = real_embedder.embed([text])
    assert cosines(fp32.embed([text]), want)[0] > 0.999
    # The check can fail: read in full (up to the model's 512 positions), the text is another vector.
    untruncated = ov.OpenVINOEmbedder(exports["fp32"], MODEL)
    untruncated._tokenizer.enable_truncation(512)
    assert cosines(untruncated.embed([text]), want)[0] < 0.99


def test_outputs_keep_the_input_order_when_lengths_vary(exports, ov, real_embedder) -> None:
    words = " ".join(paragraphs("tutorial/modules.rst.txt", 30)).split()
    rng = np.random.default_rng(7)
    texts = [" ".join(words[int(s):int(s) + int(n)]) for s, n in zip(rng.integers(0, 2000, 23),
                                                                    rng.integers(1, 220, 23), strict=True)]
    # Small batches and a small budget: many batches, each sorted by length, none in input order.
    emb = ov.OpenVINOEmbedder(exports["fp32"], MODEL, max_batch_tokens=600)
    got = emb.embed(texts, batch_size=4)
    assert cosines(got, real_embedder.embed(texts)).min() > 0.999
    alone = np.concatenate([emb.embed([t]) for t in texts])
    assert cosines(got, alone).min() > 0.9999
    perm = rng.permutation(len(texts))
    np.testing.assert_allclose(emb.embed([texts[i] for i in perm]), got[perm], atol=1e-5)


def test_concurrent_calls_give_the_sequential_results(int8) -> None:
    texts = paragraphs("tutorial/errors.rst.txt", 24)
    want = int8.embed(texts, batch_size=5)
    results: dict[int, np.ndarray] = {}

    def run(i: int) -> None:
        results[i] = int8.embed(texts[i:] + texts[:i], batch_size=5)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1, 2, 3]
    for i, got in results.items():
        assert cosines(got, np.roll(want, -i, axis=0)).min() > 0.9999


def test_the_runtime_needs_no_torch(exports) -> None:
    code = ("import sys; from pathlib import Path; from assistant.backends.openvino import OpenVINOEmbedder; "
            f"e = OpenVINOEmbedder(Path({str(exports['int8'])!r})); e.embed(['hello']); "
            "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_the_validity_check_knows_the_backend(exports, ov) -> None:
    assert ov.export_problems(exports["fp32"], MODEL, backend=ov.FP32) == []
    assert ov.is_valid_export(exports["int8"], MODEL, backend=ov.INT8)
    assert not ov.is_valid_export(exports["fp32"], MODEL, backend=ov.INT8)
    (problem,) = ov.export_problems(exports["int8"], MODEL, backend=ov.FP32)
    assert problem == "backend: folder has openvino-int8, wanted openvino-fp32"
    assert ov.export_problems(exports["int8"].parent / "nothing", MODEL)[0].endswith("(not an OpenVINO export)")


def _edit_metadata(folder: Path, edit) -> None:
    path = folder / "openvino_export.json"
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")


def _resigned(**changes):
    """An edit of the metadata that keeps its checksum valid: what a folder made differently would hold."""
    from assistant.backends.openvino import signed

    return lambda d: _edit_metadata(d, lambda s: json.dumps(signed({**json.loads(s), **changes})))


@pytest.mark.parametrize(("damage", "says"), [
    (lambda d: _edit_metadata(d, lambda s: s[: len(s) // 2]), "unreadable"),
    (lambda d: _edit_metadata(d, lambda s: "[1, 2]"), "not a JSON object"),
    (lambda d: _edit_metadata(d, lambda s: s.replace('"openvino-int8"', '"openvino-fp32"')), "checksum"),
    (lambda d: _edit_metadata(d, lambda s: s.replace('"max_seq_length": 256', '"max_seq_length": 512')), "checksum"),
    (_resigned(source_sha256="0" * 64), "source: made from another all-MiniLM-L6-v2"),
    (lambda d: _resigned(source_sha256="0" * 64, source_files={
        **json.loads((d / "openvino_export.json").read_text())["source_files"], "model.safetensors": "0" * 64})(d),
     "(model.safetensors differ)"),
    (_resigned(backend="openvino-fp32"), "backend: folder has openvino-fp32, wanted openvino-int8"),
    (_resigned(format_version=99), "format 99"),
    (_resigned(dimension="384"), "dimension is missing or not a int"),
    (lambda d: (d / "model.bin").write_bytes((d / "model.bin").read_bytes()[:-10]), "model.bin: changed"),
    (lambda d: (d / "tokenizer.json").unlink(), "tokenizer.json: missing"),
])
def test_the_validity_check_rejects_a_damaged_folder(exports, ov, tmp_path, damage, says) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(exports["int8"], folder)
    assert ov.export_problems(folder, MODEL, backend=ov.INT8) == []
    damage(folder)
    problems = ov.export_problems(folder, MODEL, backend=ov.INT8)
    assert any(says in p for p in problems), problems
    if not says.startswith("backend"):  # relabelled but intact: loadable, just not for an int8 caller
        with pytest.raises(ov.OpenVINOExportError):
            ov.OpenVINOEmbedder(folder, MODEL)


def test_ensure_reuses_a_valid_folder_and_replaces_another(exports, ov, tmp_path, monkeypatch) -> None:
    folder = tmp_path / "fp32"
    shutil.copytree(exports["fp32"], folder)
    monkeypatch.setattr(ov, "export_openvino", lambda *a, **k: pytest.fail("a valid export was redone"))
    assert ov.ensure_openvino(MODEL, folder, int8=False) == folder
    monkeypatch.undo()
    (folder / "model.bin").write_bytes(b"damaged")
    assert not ov.is_valid_export(folder, MODEL, backend=ov.FP32)
    ov.ensure_openvino(MODEL, folder, int8=False)
    assert ov.export_problems(folder, MODEL, backend=ov.FP32) == []


def test_a_failed_export_leaves_the_previous_folder_as_it_was(exports, ov, tmp_path, monkeypatch) -> None:
    import openvino

    folder = tmp_path / "fp32"
    shutil.copytree(exports["fp32"], folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def half_written(model, path, **kwargs) -> None:
        Path(path).write_text("<net>")
        raise OSError("disk full")

    monkeypatch.setattr(openvino, "save_model", half_written)
    with pytest.raises(OSError, match="disk full"):
        ov.export_openvino(MODEL, folder, int8=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp32"]  # no temp folder left behind
    with pytest.raises(OSError, match="disk full"):
        ov.export_openvino(MODEL, tmp_path / "new", int8=False)
    assert not (tmp_path / "new").exists()


def test_a_killed_export_leaves_nothing_and_the_next_one_cleans_up(ov, tmp_path) -> None:
    out = tmp_path / "out"
    code = ("from pathlib import Path; from assistant.backends.openvino import export_openvino; "
            f"export_openvino('{MODEL}', Path({str(out)!r}), int8=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.tmp-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the export ended before it could be killed"
    time.sleep(0.3)  # into loading and converting the model
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    assert list(tmp_path.glob(".out.tmp-*"))  # the killed export's work, never visible as `out`
    ov.export_openvino(MODEL, out, int8=False)
    assert ov.export_problems(out, MODEL, backend=ov.FP32) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
