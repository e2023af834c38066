"""An index built with the OpenVINO int8 backend, end to end with the bundled model: the model is exported
into the index folder and calibrated on the corpus' own chunks, queries use the same backend, answers cite
the same sentence as the torch build, and vectors of two backends never meet."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.app import Assistant
from assistant.errors import IndexMismatchError
from assistant.index import open_index
from assistant.retrieve import Retriever
from assistant.settings import Settings

pytestmark = pytest.mark.slow


def test_an_int8_index_answers_like_the_torch_one(tmp_path: Path, articles: Path, real_embedder) -> None:
    s = Settings.load(env={}, docs_dir=articles, index_dir=tmp_path / "int8", backend="openvino-int8")
    a = Assistant.open(s)
    manifest = open_index(s.index_dir).manifest
    assert manifest.backend == "openvino-int8" and manifest.pending == 0
    assert (s.index_dir / "models" / "openvino-int8" / "model.xml").is_file()

    torch = Assistant.open(s.replace(index_dir=tmp_path / "torch", backend="torch"), embedder=real_embedder)
    for q in ("Who is Alex Turner?", "What expertise do the Amazon and Meta veterans bring to TikTok?"):
        mine, theirs = a.ask(q), torch.ask(q)
        assert not mine.abstained and mine.citations[0].quote == theirs.citations[0].quote
    with pytest.raises(IndexMismatchError, match="backend: index has 'openvino-int8', settings say 'torch'"):
        Retriever.open(s.replace(backend="torch"), real_embedder)
