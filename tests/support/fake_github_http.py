"""HTTP plumbing of the fake GitHub: request/response values, routing, errors, paging, the server.

Routes are plain functions `(ctx, request, **path_params) -> Response`; they
raise ApiError for GitHub's error answers. Paging follows GitHub exactly:
`page`/`per_page` (default 30, at most 100) and a Link header with prev,
next, last and first urls that keep the request's other parameters.
"""
from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.support.fake_github_payloads import Payloads
from tests.support.fake_github_state import State, Token

DOCS = "https://docs.github.com/rest"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100


@dataclass
class Request:
    method: str
    path: str  # API path without prefix or query, e.g. /repos/acme/infra
    query: dict[str, str]
    body: Any
    headers: dict[str, str]  # lower-cased names
    token: Optional[Token] = None  # the installation token, for installation routes
    user: Optional[str] = None  # the login of the user access token, for user routes


@dataclass
class Response:
    status: int
    body: Any = None  # JSON, or bytes sent as they are (with a Content-Type in `headers`)
    headers: dict[str, str] = field(default_factory=dict)
    # Runs after the state lock is released and before the answer is sent,
    # for work that may call back into the fake (a redelivery hook).
    after: Optional[Callable[[], None]] = None


class ApiError(Exception):
    """An error answer: status code, JSON body and extra headers."""

    def __init__(self, status: int, body: Any, headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def error_body(status: int, message: str, doc: str = DOCS, **extra: Any) -> dict[str, Any]:
    """GitHub's error JSON: message, documentation_url and the status as a string."""
    return {"message": message, **extra, "documentation_url": doc, "status": str(status)}


def fail(status: int, message: str, doc: str = DOCS) -> ApiError:
    """An ApiError with GitHub's plain error body."""
    return ApiError(status, error_body(status, message, doc))


def not_found() -> ApiError:
    """GitHub's 404, also its answer for things the caller may not see."""
    return fail(404, "Not Found")


def validation_failed(resource: str, field_name: str, code: str, message: Optional[str] = None,
                      doc: str = DOCS) -> ApiError:
    """GitHub's 422 `Validation Failed` with one entry in `errors`."""
    error: dict[str, Any] = {"resource": resource, "code": code, "field": field_name}
    if message is not None:
        error["message"] = message
    return ApiError(422, error_body(422, "Validation Failed", doc, errors=[error]))


# ---- routing ---------------------------------------------------------------

_PARAM = re.compile(r"\{(\w+)\}")


@dataclass
class Route:
    method: str
    regex: re.Pattern
    auth: str  # "jwt" (the app), "installation" (an installation token) or "user" (a user access token)
    handler: Callable[..., Response]
    needs: tuple[str, ...] = ()  # token permissions, any of which must be "write"


class Router:
    """Maps (method, path) to a Route; `{name}` in a pattern matches one path segment."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Callable[..., Response], auth: str = "installation",
            needs: Sequence[str] = ()) -> None:
        regex = re.compile("^" + _PARAM.sub(r"(?P<\1>[^/]+)", pattern) + "$")
        self.routes.append(Route(method, regex, auth, handler, tuple(needs)))

    def match(self, method: str, path: str) -> Optional[tuple[Route, dict[str, str]]]:
        for route in self.routes:
            found = route.regex.match(path)
            if found and route.method == method:
                return route, found.groupdict()
        return None


@dataclass
class Ctx:
    """What routes work with: the state (lock held) and the payload builder."""

    state: State
    pay: Payloads


# ---- paging ----------------------------------------------------------------

def _int_param(query: dict[str, str], name: str, default: int) -> int:
    try:
        return int(query.get(name, default))
    except ValueError:
        return default


def page_window(query: dict[str, str]) -> tuple[int, int]:
    """(page, per_page) as GitHub reads them: per_page default 30, capped at 100; page from 1."""
    per_page = _int_param(query, "per_page", DEFAULT_PER_PAGE)
    per_page = DEFAULT_PER_PAGE if per_page < 1 else min(per_page, MAX_PER_PAGE)
    return max(_int_param(query, "page", 1), 1), per_page


def paginate(items: Sequence[Any], query: dict[str, str], url: str) -> tuple[list[Any], dict[str, str]]:
    """One page of `items` and, when there is more than one page, GitHub's Link header for `url`."""
    page, per_page = page_window(query)
    last = max(1, math.ceil(len(items) / per_page))
    chunk = list(items[(page - 1) * per_page: page * per_page])
    if last == 1:
        return chunk, {}

    def link(target: int, rel: str) -> str:
        params = dict(query)
        params["page"] = str(target)  # dict keeps the caller's order, page last if new
        return f'<{url}?{urlencode(params)}>; rel="{rel}"'

    links = []
    if page > 1:
        links.append(link(min(page - 1, last), "prev"))
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links.append(link(1, "first"))
    return chunk, {"Link": ", ".join(links)}


# ---- the server ------------------------------------------------------------

Dispatch = Callable[[str, str, dict[str, str], bytes], Response]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests' connection pool expects
    server_version = "FakeGitHub/1.0"
    timeout = 30  # an idle keep-alive connection must not pin a thread forever
    # Headers and body leave in one segment: with Nagle's algorithm and delayed
    # ACKs a two-part answer costs ~40 ms per request on loopback.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    dispatch: Dispatch  # set on the per-server subclass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = self.dispatch(self.command, self.path, headers, raw)
        raw = isinstance(response.body, bytes)
        payload = response.body if raw else b"" if response.body is None else json.dumps(response.body).encode()
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status != 204 and response.status != 304:
            if not raw:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if response.status not in (204, 304):
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        # The request log on FakeGitHub is the record; stderr noise helps no one.
        pass


class _Listener(ThreadingHTTPServer):
    # The default backlog of 5 overflows when several tfbot processes start at once on a loaded machine,
    # and a connection the kernel could not queue is reset: GitHub itself never does that.
    request_queue_size = 128


class HttpServer:
    """A threaded HTTP server on 127.0.0.1 (ephemeral port) handing every request to `dispatch`."""

    def __init__(self, dispatch: Dispatch) -> None:
        handler = type("FakeGitHubHandler", (_Handler,), {"dispatch": staticmethod(dispatch)})
        self._server = _Listener(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        # A short poll interval makes stop() quick; serving itself does not poll.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-github", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def split_target(target: str) -> tuple[str, dict[str, str]]:
    """The path and the query (first value of each name) of a request target."""
    parts = urlsplit(target)
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(name, value)
    return parts.path, query
