"""Where an adapter's passages come from: an Assistant (or Retriever) in this process, or a running server's
`POST /v1/search`. Either way a hit is the dict of `search --json`."""

from __future__ import annotations

import os
from typing import Any

from ..errors import AssistantError, InputError
from ..jsonable import hit_dict


class Hits:
    """Search `assistant` (anything with `.search(query, k)` returning Hits) or the server at `url`. A login:
    `auth=(user, password)` (HTTP basic, the chat's login) or `token` (default: ASSISTANT_API_TOKEN)."""

    def __init__(self, assistant: Any = None, url: str | None = None, *, auth: tuple[str, str] | None = None,
                 token: str | None = None, timeout: float = 60.0) -> None:
        if (assistant is None) == (url is None):
            raise InputError("give either an assistant (in this process) or the url of a running server")
        self.assistant = assistant
        self.url = url.rstrip("/") if url else None
        self.auth = auth
        self.token = os.environ.get("ASSISTANT_API_TOKEN", "") if token is None else token
        self.timeout = timeout

    def search(self, query: str, k: int | None) -> list[dict[str, Any]]:
        if self.assistant is not None:
            return [hit_dict(h) for h in self.assistant.search(query, k=k)]
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"} if self.token and not self.auth else {}
        response = httpx.post(f"{self.url}/v1/search", json={"query": query, "k": k}, auth=self.auth,
                              headers=headers, timeout=self.timeout)
        if response.status_code != 200:
            raise AssistantError(f"{self.url}/v1/search: {response.status_code} {_message(response)}")
        return list(response.json()["hits"])


def metadata(hit: dict[str, Any]) -> dict[str, Any]:
    """What a framework's document carries besides the text: where it is, and how it scored."""
    return {k: hit[k] for k in ("source", "start", "end", "headings", "page", "rank", "score", "dense_score",
                                "bm25_score")}


def hit_id(hit: dict[str, Any]) -> str:
    return f"{hit['source']}:{hit['start']}-{hit['end']}"


def _message(response: Any) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
