"""A LlamaIndex retriever over the assistant (pip install 'assistant[llama-index]'):

    from assistant.integrations.llama_index import AssistantRetriever
    nodes = AssistantRetriever(url="http://127.0.0.1:7860", k=3).retrieve("Who joined TikTok from Meta?")

Each node is a TextNode whose start_char_idx/end_char_idx (and metadata start/end) are the passage's offsets
into the source's loaded text; metadata also holds source, headings, page and the scores."""

from __future__ import annotations

from typing import Any

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as e:
    raise ImportError("assistant.integrations.llama_index needs llama-index-core: "
                      "pip install 'assistant[llama-index]'") from e

from ._hits import Hits, hit_id, metadata


class AssistantRetriever(BaseRetriever):
    """Passages from an `Assistant` in this process (`assistant=`) or a running server (`url=`), as nodes.
    `auth=(user, password)` or `token` (default: ASSISTANT_API_TOKEN) log in to a server that needs it."""

    def __init__(self, assistant: Any = None, *, url: str | None = None, k: int | None = None,
                 auth: tuple[str, str] | None = None, token: str | None = None, timeout: float = 60.0,
                 **kwargs: Any) -> None:
        self._hits = Hits(assistant, url, auth=auth, token=token, timeout=timeout)
        self._k = k
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        nodes = []
        for h in self._hits.search(query_bundle.query_str, self._k):
            node = TextNode(id_=hit_id(h), text=h["text"], metadata=metadata(h), start_char_idx=h["start"],
                            end_char_idx=h["end"])
            nodes.append(NodeWithScore(node=node, score=h["score"]))
        return nodes
