"""The HTTP API as one FastAPI app over an Assistant: the REST routes, OpenAI-compatible chat completions, the
OpenAPI schema and its page (/docs, offline). Its own middleware checks the login, the Host on a loopback
server and the body size; its errors are `{"error": {"code", "message"}}`. `add_api_routes` puts it beside
the web chat, on the chat's port and behind the chat's login."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..errors import AssistantError
from ..jsonable import OFFSETS
from . import openai_compat, rest
from .auth import ApiAuth, Credentials, is_loopback
from .errors import CODES, ApiError, error_response, from_library, validation_message
from .limits import BodyLimit, max_body_bytes

if TYPE_CHECKING:
    import gradio as gr

    from ..app import Assistant
    from ..ui.server import ServerGuard

OPENAPI_URL = "/v1/openapi.json"
DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
# What the chat server hands to this app: exact paths, and every path below one ending in "/".
PATHS = ("/v1/", "/healthz", DOCS_URL, DOCS_URL + "/")
STATUS_TEXT = {404: "not_found", 405: "method_not_allowed"}

DESCRIPTION = f"""Cited answers and passages from a folder of documents.

**Offsets.** Every `start`/`end` (hits, citations, sections) indexes the document's *loaded text*: the file
itself for text formats (.txt, .md, .rst, .adoc), the extracted text for HTML, PDF, .docx, .pptx, .ipynb and
.epub. `GET /v1/documents/{{source}}` returns that text, so `text[start:end] == quote` and a client can show a
citation in its context. Offsets count Unicode code points (Python string indices), not bytes or UTF-16 units.

**Login.** When the chat has a login, these routes take the same one: HTTP basic with its user and password,
or its login cookie; with `ASSISTANT_API_TOKEN` set, also `Authorization: Bearer <token>`.

**Errors** are `{{"error": {{"code", "message"}}}}`; the message is one line naming the field.
Codes: {"; ".join(f"`{code}` {what}" for code, what in CODES.items())}.

{OFFSETS}."""


def create_api(assistant: Assistant, credentials: Credentials | None = None, *,
               loopback_only: bool = False) -> FastAPI:
    """The API app. `credentials` (default: none required) say which logins it takes; with `loopback_only`
    (a server bound to a loopback address) requests for any other Host are refused."""
    limit = max_body_bytes(assistant.settings)
    api = FastAPI(title="Document assistant", version=__version__, description=DESCRIPTION,
                  openapi_url=OPENAPI_URL, docs_url=None, redoc_url=None,
                  middleware=[Middleware(ApiAuth, credentials=credentials or Credentials(),
                                         loopback_only=loopback_only),
                              Middleware(BodyLimit, limit=limit)])
    api.include_router(rest.router(assistant))
    api.include_router(openai_compat.router(assistant))
    _add_docs(api)

    @api.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> Response:
        return error_response(e.status, e.code, e.message, e.headers)

    @api.exception_handler(AssistantError)
    async def library_error(request: Request, e: AssistantError) -> Response:
        err = from_library(e)
        return error_response(err.status, err.code, err.message, err.headers)

    @api.exception_handler(RequestValidationError)
    async def bad_input(request: Request, e: RequestValidationError) -> Response:
        return error_response(400, "invalid_input", validation_message(list(e.errors())))

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> Response:
        code = STATUS_TEXT.get(e.status_code, "bad_request" if e.status_code < 500 else "internal")
        message = f"no route {request.method} {request.url.path}" if e.status_code in STATUS_TEXT else str(e.detail)
        return error_response(e.status_code, code, message, dict(e.headers or {}))

    @api.exception_handler(Exception)
    async def internal(request: Request, e: Exception) -> Response:
        return error_response(500, "internal", "internal error; the server's log has the details")

    return api


def _add_docs(api: FastAPI) -> None:
    """The OpenAPI page, with Swagger UI's files from the fastapi-offline package: nothing is fetched."""
    from pathlib import Path

    import fastapi_offline

    static = Path(fastapi_offline.__file__).parent / "static"
    api.mount(ASSETS_URL, StaticFiles(directory=static), name="docs-assets")

    @api.get(DOCS_URL, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title="Document assistant API",
                                   swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
                                   swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": True})


def add_api_routes(demo: gr.Blocks, assistant: Assistant, guard: ServerGuard | None = None) -> FastAPI:
    """Serve the API beside the chat of a launched `demo`: on its port, behind its login (the guard's check,
    cookie and throttle), and with settings.api_token as a bearer token."""
    from ..ui.server import logged_in_user

    s = assistant.settings
    server = demo.app
    credentials = Credentials.of(s.auth_user, s.auth_password, s.api_token,
                                 throttle=guard.throttle if guard else None, login=guard.auth if guard else None,
                                 session_user=lambda scope: logged_in_user(scope, server) if server.auth else None)
    api = create_api(assistant, credentials, loopback_only=is_loopback(str(demo.server_name or s.host)))
    if guard is not None:
        guard.delegate(*PATHS)
    # First, so no route of the chat can answer these paths instead (the login check is the API's own).
    routes: list[Any] = [Route("/v1/{rest:path}", api), Route("/healthz", api), Route(DOCS_URL, api),
                         Route(DOCS_URL + "/{rest:path}", api)]
    server.router.routes[:0] = routes
    return api
