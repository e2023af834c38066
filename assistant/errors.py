"""The errors the library raises on purpose. The CLI turns each into one line and a non-zero exit."""

from __future__ import annotations


class AssistantError(Exception):
    """Base class: anything the user can act on."""

    exit_code = 1


class ConfigError(AssistantError):
    """A setting is unknown or has a bad value."""

    exit_code = 2


class InputError(AssistantError):
    """A question, query, history, k or mode given to the assistant is empty, malformed or over its bound."""

    exit_code = 2


class DocumentError(AssistantError):
    """One document could not be read; the others still are."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ModelNotFoundError(AssistantError):
    """The embedding model or tokenizer encoding is not available offline."""


class IndexNotFoundError(AssistantError):
    """No index has been built in the folder yet."""


class IndexMismatchError(AssistantError):
    """The index on disk was built with other settings than the ones in force."""


class IndexLockedError(AssistantError):
    """Another process is writing the index."""


class EndpointError(AssistantError):
    """The LLM endpoint is unreachable or answered with an error."""


class StoreError(AssistantError):
    """The database that holds the index is unreachable, lacks an extension, or has an unknown schema."""
