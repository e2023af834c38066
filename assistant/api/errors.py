"""The HTTP APIs' one error shape, `{"error": {"code", "message"}}`, and the status of each library error."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from ..errors import (
    AssistantError,
    DocumentError,
    EndpointError,
    IndexLockedError,
    IndexNotFoundError,
    InputError,
)

RETRY_AFTER_S = 2  # what a 503 tells a client to wait while the model loads

# code -> what it means; the OpenAPI description lists these
CODES = {
    "invalid_input": "400: a field is missing, of the wrong type, or out of its bound (the message names it)",
    "unauthorized": "401: no login, or a wrong one (HTTP basic with the chat's login, or a bearer token)",
    "forbidden_host": "403: a loopback server answers only requests addressed to a loopback name",
    "not_found": "404: no such route, document (`unknown_source`) or model (`unknown_model`)",
    "unknown_source": "404: no indexed document has this source",
    "unknown_model": "404: /v1/models lists the models",
    "method_not_allowed": "405",
    "too_large": "413: the request body is larger than the input bounds allow",
    "rate_limited": "429: too many failed logins from this address; see Retry-After",
    "llm_failed": "502: the LLM endpoint failed",
    "loading": "503: the embedding model or the index is loading; see Retry-After",
    "internal": "500: a bug; the server's log has the details",
}


class ApiError(Exception):
    """An error with its HTTP status and code, raised by routes and turned into the JSON shape."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers={"X-Content-Type-Options": "nosniff", **(headers or {})})


def from_library(e: AssistantError) -> ApiError:
    """The ApiError for an error the library raised on purpose."""
    if isinstance(e, InputError):
        return ApiError(400, "invalid_input", str(e))
    if isinstance(e, DocumentError):
        return ApiError(404, "unknown_source", str(e))
    if isinstance(e, IndexLockedError | IndexNotFoundError):  # another process is (re)building the index
        return ApiError(503, "loading", str(e), {"Retry-After": str(RETRY_AFTER_S)})
    if isinstance(e, EndpointError):
        return ApiError(502, "llm_failed", str(e))
    return ApiError(500, "internal", str(e))


def loading(what: str = "the embedding model") -> ApiError:
    return ApiError(503, "loading", f"{what} is loading; retry in a few seconds",
                    {"Retry-After": str(RETRY_AFTER_S)})


def validation_message(errors: list[dict[str, Any]]) -> str:
    """One line naming the field, from pydantic's errors: "k: Input should be a valid integer"."""
    if not errors:
        return "invalid request"
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    field = ".".join(loc) if loc else "body"
    kind = first.get("type", "")
    if kind == "json_invalid":
        field, message = "body", f"invalid JSON ({first.get('ctx', {}).get('error', 'cannot parse')})"
    elif kind == "missing" and not loc:
        message = "a JSON object is required"
    elif kind == "missing":
        message = "required"
    elif kind == "extra_forbidden":
        message = "unknown field"
    else:
        message = str(first.get("msg", "invalid"))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{field}: {message}{more}"[:300]
