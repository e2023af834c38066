"""A LangChain retriever over the assistant (pip install 'assistant[langchain]'):

    from assistant.integrations.langchain import AssistantRetriever
    docs = AssistantRetriever(url="http://127.0.0.1:7860", k=3).invoke("Who joined TikTok from Meta?")

Each Document's page_content is a passage; its metadata holds source, start, end (offsets into the source's
loaded text), headings, page and the scores."""

from __future__ import annotations

from typing import Any

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as e:
    raise ImportError("assistant.integrations.langchain needs langchain-core: "
                      "pip install 'assistant[langchain]'") from e

from pydantic import ConfigDict, PrivateAttr, model_validator

from ._hits import Hits, hit_id, metadata


class AssistantRetriever(BaseRetriever):
    """Passages from an `Assistant` in this process (`assistant=`) or a running server (`url=`), as Documents.
    `auth=(user, password)` or `token` (default: ASSISTANT_API_TOKEN) log in to a server that needs it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    assistant: Any = None
    url: str | None = None
    k: int | None = None
    auth: tuple[str, str] | None = None
    token: str | None = None
    timeout: float = 60.0
    _hits: Hits = PrivateAttr()

    @model_validator(mode="after")
    def _connect(self) -> AssistantRetriever:
        self._hits = Hits(self.assistant, self.url, auth=self.auth, token=self.token, timeout=self.timeout)
        return self

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [Document(page_content=h["text"], metadata=metadata(h), id=hit_id(h))
                for h in self._hits.search(query, self.k)]
