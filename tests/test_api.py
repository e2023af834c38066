"""The public Python API: lazy top-level names, settings validation."""

from __future__ import annotations

import subprocess
import sys

import pytest

import assistant
from assistant.errors import ConfigError
from assistant.settings import Settings


def test_every_exported_name_resolves() -> None:
    for name in assistant.__all__:
        assert getattr(assistant, name) is not None


def test_import_is_cheap() -> None:
    code = "import sys, assistant; assistant.Settings; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_unknown_setting_is_rejected_with_its_name() -> None:
    with pytest.raises(ConfigError, match="chunk_size"):
        Settings.load(env={}, chunk_size=10)


def test_environment_overrides_defaults_and_arguments_override_both() -> None:
    s = Settings.load(env={"ASSISTANT_K": "7", "ASSISTANT_RETRIEVAL": "dense"}, k=3)
    assert s.k == 3 and s.retrieval == "dense"


def test_bad_values_name_the_field() -> None:
    with pytest.raises(ConfigError, match="retrieval"):
        Settings.load(env={}, retrieval="magic")
    with pytest.raises(ConfigError, match="chunk_overlap"):
        Settings.load(env={}, chunk_tokens=100, chunk_overlap=80)


def test_every_setting_is_described() -> None:
    assert all(Settings.describe().values())
