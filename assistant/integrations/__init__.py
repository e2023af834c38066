"""Retriever adapters for other frameworks, as optional extras: `langchain` (pip install 'assistant[langchain]')
and `llama_index` (pip install 'assistant[llama-index]'). Each searches an Assistant in this process or a
running `assistant serve` over its REST API."""
