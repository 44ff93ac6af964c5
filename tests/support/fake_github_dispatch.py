"""How the fake GitHub answers one request: injected faults, authentication, routing, errors, the log."""
from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any, Optional
from urllib.parse import quote, unquote

from tests.support import (
    fake_github_oauth,
    fake_github_routes_app,
    fake_github_routes_checks,
    fake_github_routes_issues,
    fake_github_routes_labels,
    fake_github_routes_repo,
)
from tests.support.fake_github_auth import (
    MSG_BAD_JWT,
    AuthFailure,
    installation_token,
    looks_like_jwt,
    parse_authorization,
    verify_app_jwt,
)
from tests.support.fake_github_http import ApiError, Ctx, Request, Response, Router, error_body, fail, not_found, \
    split_target
from tests.support.fake_github_state import RecordedRequest, State

_REPOSITORY_ID_PATH = re.compile(r"^/repositories/(\d+)(/.*)?$")
_BAD_JSON = object()


def build_router() -> Router:
    """Every endpoint the fake serves."""
    router = Router()
    for module in (fake_github_routes_app, fake_github_routes_repo, fake_github_routes_issues,
                   fake_github_routes_labels, fake_github_routes_checks, fake_github_oauth):
        module.register(router)
    return router


class Dispatcher:
    """The server's request handler: one call per HTTP request, state lock held while answering.

    `ctx` is set once the server has a port, since payload urls embed it.
    """

    def __init__(self, state: State, prefix: str) -> None:
        self.state = state
        self.prefix = prefix
        self.router = build_router()
        self.ctx: Optional[Ctx] = None

    def _ctx(self) -> Ctx:
        assert self.ctx is not None, "Dispatcher used before the server started"
        return self.ctx

    def __call__(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Response:
        path, query = split_target(target)
        if path in fake_github_oauth.WEB_PATHS:
            with self.state.lock:
                response, record = self._answer_web(method, path, query, headers, raw)
                self.state.log.append(record)
            return response
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = _BAD_JSON
        with self.state.lock:
            response, record = self._answer(method, path, query, headers, body)
            self.state.log.append(record)
        if response.after is not None:
            response.after()
        return response

    def _answer(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
                body: Any) -> tuple[Response, RecordedRequest]:
        api_path = self._api_path(path)
        resource = self._by_repository_id(api_path) if api_path is not None else None
        scheme, credential = parse_authorization(headers.get("authorization"))
        known_token = self.state.tokens.get(credential or "")
        auth = "installation" if known_token else ("jwt" if credential and looks_like_jwt(credential) else None)
        if credential in self.state.user_tokens:
            auth = "user"
        response = self._take_fault(method, {path, api_path or path, resource or path})
        if response is None:
            try:
                if body is _BAD_JSON:
                    raise fail(400, "Problems parsing JSON")
                response = self._route(method, resource, query, headers, body, scheme, credential)
            except ApiError as error:
                response = Response(error.status, error.body, dict(error.headers))
            except AuthFailure as error:
                response = Response(error.status, error_body(error.status, error.message))
        response.headers = {**self._standard_headers(), **response.headers}
        record = RecordedRequest(method, resource or path, dict(query), response.status,
                                 known_token.installation_id if known_token else None, auth,
                                 None if body is _BAD_JSON else body, raw_path=api_path or path)
        return response, record

    def _answer_web(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
                    raw: bytes) -> tuple[Response, RecordedRequest]:
        # GitHub's web host (sign-in pages): form bodies and redirects, no API authentication.
        params: Any = dict(query)
        response = self._take_fault(method, {path})
        if response is None:
            try:
                response, params = fake_github_oauth.serve_web(self._ctx(), method, path, query, headers, raw)
            except ApiError as error:
                response = Response(error.status, error.body, dict(error.headers))
        return response, RecordedRequest(method, path, dict(query), response.status, None, None, params,
                                         raw_path=path)

    def _api_path(self, path: str) -> Optional[str]:
        graphql = (self.prefix[:-3] if self.prefix.endswith("/v3") else self.prefix) + "/graphql"
        if path == graphql:
            return "/graphql"
        if not self.prefix:
            return path
        if path.startswith(self.prefix + "/"):
            return path[len(self.prefix):]
        return None

    def _take_fault(self, method: str, paths: set[str]) -> Optional[Response]:
        # A fault aimed at /repos/o/r/... also hits the /repositories/{id}/... pages of it.
        for fault in self.state.faults:
            if fault.remaining > 0 and (fault.method is None or fault.method.upper() == method) and (
                    fault.path_contains is None or any(fault.path_contains in p for p in paths)):
                fault.remaining -= 1
                return Response(fault.status, fault.body, dict(fault.headers))
        return None

    def _route(self, method: str, api_path: Optional[str], query: dict[str, str], headers: dict[str, str],
               body: Any, scheme: Optional[str], credential: Optional[str]) -> Response:
        if api_path is None:
            raise not_found()
        match = self.router.match(method, api_path)
        if match is None:
            raise not_found()
        route, params = match
        if not credential:
            raise AuthFailure(401, "Requires authentication")
        token, user = None, None
        if route.auth == "user":
            user = self.state.user_tokens.get(credential) if scheme in ("token", "bearer") else None
            if user is None:
                if credential in self.state.tokens:
                    raise fail(403, "Resource not accessible by integration")
                raise AuthFailure(401, "Bad credentials")
        elif route.auth == "jwt":
            if scheme != "bearer" or not looks_like_jwt(credential):
                raise AuthFailure(401, MSG_BAD_JWT)
            verify_app_jwt(self.state, credential)
        else:
            if scheme not in ("token", "bearer"):
                raise AuthFailure(401, "Bad credentials")
            if looks_like_jwt(credential):
                verify_app_jwt(self.state, credential)
                raise fail(403, "Resource not accessible by integration")
            token = installation_token(self.state, credential)
            if route.needs and not any(token.permissions.get(p) in ("write", "admin") for p in route.needs):
                raise fail(403, "Resource not accessible by integration")
        request = Request(method, api_path, query, body, headers, token, user)
        return route.handler(self._ctx(), request, **{k: unquote(v) for k, v in params.items()})

    def _by_repository_id(self, path: str) -> str:
        # GitHub's Link headers page through /repositories/{id}/...; serve those as /repos/{o}/{r}/...
        found = _REPOSITORY_ID_PATH.match(path)
        if not found:
            return path
        repo = self.state.repo_by_id(int(found.group(1)))
        if repo is None:
            return path  # no route matches it: 404
        return f"/repos/{quote(repo.owner)}/{quote(repo.name)}{found.group(2) or ''}"

    def _standard_headers(self) -> dict[str, str]:
        return {
            "X-GitHub-Api-Version-Selected": "2022-11-28",
            "X-GitHub-Request-Id": uuid.uuid4().hex[:20].upper(),
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4999",
            "X-RateLimit-Reset": str(int(time.time()) + 3600),
            "X-RateLimit-Used": "1",
            "X-RateLimit-Resource": "core",
        }
