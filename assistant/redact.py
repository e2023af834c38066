"""Credentials never printed: a database URL as messages show it, its password masked."""

from __future__ import annotations

import re

_PASSWORD = re.compile(r"^(?P<head>[a-zA-Z][\w+.-]*://[^:/@?#]*):(?P<pw>[^@/?#]*)@")
_QUERY_PASSWORD = re.compile(r"(?i)(password=)[^&\s]*")


def mask_url(url: str) -> str:
    """`url` with the password (in the authority or a `password=` parameter) replaced by `***`."""
    masked = _PASSWORD.sub(lambda m: f"{m['head']}:***@", url)
    return _QUERY_PASSWORD.sub(r"\1***", masked)


def scrub(text: str, url: str) -> str:
    """`text` (e.g. a driver's error message) with any occurrence of `url`'s password masked."""
    m = _PASSWORD.match(url)
    out = text.replace(url, mask_url(url))
    if m and m["pw"]:
        out = out.replace(m["pw"], "***")
    return _QUERY_PASSWORD.sub(r"\1***", out)
