"""The retriever adapters with the real LangChain and LlamaIndex: passages as their documents and nodes, with
source and offsets into the loaded text, in this process and from a running server; install hints."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import TOKEN, hash_assistant, launched

pytestmark = [
    pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
QUERY = "Who joined TikTok from Meta?"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    a = hash_assistant(tmp_path_factory.mktemp("integrations"), api_token=TOKEN)
    with launched(a) as url:
        yield url, a


@pytest.mark.slow
def test_langchain_documents_carry_source_offsets_and_headings(articles_assistant) -> None:
    from langchain_core.documents import Document
    from langchain_core.runnables import RunnableLambda

    from assistant.integrations.langchain import AssistantRetriever

    retriever = AssistantRetriever(assistant=articles_assistant, k=3)
    docs = retriever.invoke(QUERY)
    hits = articles_assistant.search(QUERY, k=3)
    assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
    assert [(d.metadata["source"], d.metadata["start"], d.metadata["end"]) for d in docs] == \
        [(h.source, h.start, h.end) for h in hits]
    for d in docs:
        text = articles_assistant.document_text(d.metadata["source"])
        assert text[d.metadata["start"]:d.metadata["end"]] == d.page_content
        assert d.id == f"{d.metadata['source']}:{d.metadata['start']}-{d.metadata['end']}"
        assert isinstance(d.metadata["headings"], list)
    assert any("Alex Turner" in d.page_content for d in docs)
    chain = retriever | RunnableLambda(lambda ds: "\n".join(d.metadata["source"] for d in ds))
    assert chain.invoke(QUERY).splitlines() == [h.source for h in hits]


def test_langchain_over_a_running_server_matches_in_process(served) -> None:
    from assistant.integrations.langchain import AssistantRetriever

    url, a = served
    remote = AssistantRetriever(url=url, token=TOKEN, k=4).invoke(QUERY)
    local = AssistantRetriever(assistant=a, k=4).invoke(QUERY)
    assert [(d.page_content, d.metadata) for d in remote] == [(d.page_content, d.metadata) for d in local]
    with pytest.raises(Exception, match="401 wrong login or token"):
        AssistantRetriever(url=url, token="wrong").invoke(QUERY)
    with pytest.raises(Exception, match="k: must be between 1 and 50"):
        AssistantRetriever(url=url, token=TOKEN, k=0).invoke(QUERY)


@pytest.mark.slow
def test_llama_index_nodes_carry_source_and_char_offsets(articles_assistant) -> None:
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from assistant.integrations.llama_index import AssistantRetriever

    nodes = AssistantRetriever(articles_assistant, k=3).retrieve(QueryBundle(QUERY))
    hits = articles_assistant.search(QUERY, k=3)
    assert len(nodes) == 3 and all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
    assert [n.score for n in nodes] == pytest.approx([h.score for h in hits], abs=1e-6)
    for n, h in zip(nodes, hits, strict=True):
        assert (n.node.metadata["source"], n.node.start_char_idx, n.node.end_char_idx) == (h.source, h.start, h.end)
        assert articles_assistant.document_text(h.source)[n.node.start_char_idx:n.node.end_char_idx] == n.node.text


def test_llama_index_over_a_running_server(served) -> None:
    from assistant.integrations.llama_index import AssistantRetriever

    url, a = served
    remote = AssistantRetriever(url=url, token=TOKEN, k=2).retrieve(QUERY)
    local = AssistantRetriever(a, k=2).retrieve(QUERY)
    assert [(n.node.text, n.node.metadata) for n in remote] == [(n.node.text, n.node.metadata) for n in local]


def test_an_adapter_needs_one_place_to_search() -> None:
    from assistant.errors import InputError
    from assistant.integrations.langchain import AssistantRetriever

    with pytest.raises(InputError, match="either an assistant"):
        AssistantRetriever()


@pytest.mark.parametrize(("module", "package", "extra"), [("langchain", "langchain_core", "langchain"),
                                                          ("llama_index", "llama_index", "llama-index")])
def test_a_missing_library_is_an_install_hint(module: str, package: str, extra: str, tmp_path: Path) -> None:
    code = (f"import sys; sys.modules[{package!r}] = None\n"
            f"try:\n    import assistant.integrations.{module}\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().endswith(f"pip install 'assistant[{extra}]'"), out.stdout + out.stderr
