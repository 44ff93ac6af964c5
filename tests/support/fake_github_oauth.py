"""The App's OAuth web flow as GitHub serves it: the authorize page, the code exchange, and `GET /user`.

GitHub's documentation ("Generating a user access token for a GitHub App", "Troubleshooting OAuth app access token
request errors"):

- `GET /login/oauth/authorize?client_id&redirect_uri&state`: the signed-in user approves, and GitHub redirects to
  `redirect_uri?code=...&state=...`; a user who cancels comes back with `error=access_denied` instead. Here the
  browser's user is chosen by the test (`FakeGitHub.authorize_as`), and approval is immediate.
- `POST /login/oauth/access_token` with client_id, client_secret, code and redirect_uri (query, form or JSON):
  a user access token (`ghu_...`, with `expires_in` and a refresh token). Failures still answer 200, with `error`,
  `error_description` and `error_uri`: `incorrect_client_credentials`, `redirect_uri_mismatch`,
  `bad_verification_code` (unknown, used or older than ten minutes). JSON only when `Accept` asks for it,
  else form-encoded, as GitHub does.
- `GET /user` with a user access token: that user. An installation token gets 403.
- `GET /user/installations` with a user access token ("List app installations accessible to the user access
  token"): `{"total_count", "installations"}`, the App's installations where the user has explicit access (a
  collaborator's role, or the owner's) to at least one repository; paged (`per_page` at most 100, `Link`).
- `GET /user/installations/{installation_id}/repositories` ("List repositories accessible to the user access
  token"): `{"total_count", "repository_selection", "repositories"}`, each repository with the user's
  `permissions` flags; 404 for an installation the user cannot reach.

These paths are on GitHub's web host, never under the Enterprise API prefix.
"""
from __future__ import annotations

import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tests.support.fake_github_access import explicit_role, int_param
from tests.support.fake_github_http import Ctx, Request, Response, Router, fail, not_found, paginate
from tests.support.fake_github_routes_repo import permission_flags
from tests.support.fake_github_state import Installation, OAuthCode, Repo, User

CODE_LIFETIME = 600  # GitHub: "codes expire after 10 minutes"
USER_TOKEN_LIFETIME = 28800
REFRESH_TOKEN_LIFETIME = 15897600
WEB_PATHS = ("/login/oauth/authorize", "/login/oauth/access_token")
_DOCS = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/"
_ERRORS = {
    "incorrect_client_credentials": "The client_id and/or client_secret passed are incorrect.",
    "redirect_uri_mismatch": "The redirect_uri MUST match the registered callback URL for this application.",
    "bad_verification_code": "The code passed is incorrect or expired.",
}


def register(router: Router) -> None:
    """Add the API route a user access token calls."""
    router.add("GET", "/user", get_authenticated_user, auth="user")
    router.add("GET", "/user/installations", list_user_installations, auth="user")
    router.add("GET", "/user/installations/{installation_id}/repositories", list_user_installation_repos,
               auth="user")


def get_authenticated_user(ctx: Ctx, req: Request) -> Response:
    assert req.user is not None
    return Response(200, ctx.pay.user(ctx.state.ensure_user(req.user)))


def _reachable(ctx: Ctx, user: User, inst: Installation) -> list[tuple[Repo, str]]:
    """The repositories of `inst` where `user` has explicit access, with their role, by name."""
    found = [(repo, explicit_role(repo, user)) for repo in ctx.state.repos.values()
             if repo.installation_id == inst.id]
    return sorted(((repo, role) for repo, role in found if role), key=lambda pair: pair[0].full_name.lower())


def list_user_installations(ctx: Ctx, req: Request) -> Response:
    assert req.user is not None
    user = ctx.state.ensure_user(req.user)
    items = [ctx.pay.installation(inst) for inst in sorted(ctx.state.installations.values(), key=lambda i: i.id)
             if _reachable(ctx, user, inst)]
    page, headers = paginate(items, req.query, f"{ctx.pay.api}/user/installations")
    return Response(200, {"total_count": len(items), "installations": page}, headers)


def list_user_installation_repos(ctx: Ctx, req: Request, installation_id: str) -> Response:
    assert req.user is not None
    user = ctx.state.ensure_user(req.user)
    inst = ctx.state.installations.get(int_param(installation_id))
    reachable = _reachable(ctx, user, inst) if inst is not None else []
    if inst is None or not reachable:
        raise not_found()  # GitHub hides an installation the user cannot reach
    items = [{**ctx.pay.repo(repo, full=False), "permissions": permission_flags(role)} for repo, role in reachable]
    page, headers = paginate(items, req.query, f"{ctx.pay.api}/user/installations/{inst.id}/repositories")
    return Response(200, {"total_count": len(items), "repository_selection": inst.repository_selection,
                          "repositories": page}, headers)


def serve_web(ctx: Ctx, method: str, path: str, query: dict[str, str], headers: dict[str, str],
              raw: bytes) -> tuple[Response, dict[str, Any]]:
    """Answer one request to a path of WEB_PATHS; returns (response, the parameters it read, for the log)."""
    if path == "/login/oauth/authorize" and method == "GET":
        return _authorize(ctx, query), dict(query)
    if path == "/login/oauth/access_token" and method == "POST":
        params = {**query, **_body_params(headers, raw)}
        return _access_token(ctx, params, headers), params
    raise not_found()


def _authorize(ctx: Ctx, query: dict[str, str]) -> Response:
    state = ctx.state
    if query.get("client_id") != state.client_id:
        raise not_found()  # GitHub shows its 404 page for an unknown client id
    redirect_uri = query.get("redirect_uri") or state.oauth_callback_url
    if not redirect_uri:
        raise fail(400, "no redirect_uri and no callback URL registered")
    back: dict[str, str]
    if state.oauth_user is None:
        back = {"error": "access_denied", "error_description": "The user has denied your application access.",
                "error_uri": "https://docs.github.com/apps/managing-oauth-apps/"
                             "troubleshooting-authorization-request-errors/#access-denied"}
    else:
        code = secrets.token_hex(10)
        state.oauth_codes[code] = OAuthCode(state.oauth_user, redirect_uri, time.time() + CODE_LIFETIME)
        back = {"code": code}
    if "state" in query:
        back["state"] = query["state"]
    return Response(302, None, {"Location": _with_query(redirect_uri, back)})


def _access_token(ctx: Ctx, params: dict[str, str], headers: dict[str, str]) -> Response:
    state = ctx.state
    if params.get("client_id") != state.client_id or not secrets.compare_digest(
            params.get("client_secret", "").encode(), state.client_secret.encode()):
        return _answer(headers, _error("incorrect_client_credentials"))
    grant = state.oauth_codes.get(params.get("code", ""))
    if grant is None or grant.used or grant.expires_at <= time.time():
        return _answer(headers, _error("bad_verification_code"))
    if params.get("redirect_uri") and params["redirect_uri"] != grant.redirect_uri:
        return _answer(headers, _error("redirect_uri_mismatch"))
    grant.used = True
    token = "ghu_" + secrets.token_urlsafe(27)
    state.user_tokens[token] = grant.login
    return _answer(headers, {"access_token": token, "expires_in": USER_TOKEN_LIFETIME,
                             "refresh_token": "ghr_" + secrets.token_urlsafe(54),
                             "refresh_token_expires_in": REFRESH_TOKEN_LIFETIME, "scope": "", "token_type": "bearer"})


def _error(code: str) -> dict[str, str]:
    return {"error": code, "error_description": _ERRORS[code], "error_uri": _DOCS + "#" + code.replace("_", "-")}


def _answer(headers: dict[str, str], data: dict[str, Any]) -> Response:
    if "json" in headers.get("accept", ""):
        return Response(200, data)
    return Response(200, urlencode(data).encode(), {"Content-Type": "application/x-www-form-urlencoded"})


def _body_params(headers: dict[str, str], raw: bytes) -> dict[str, str]:
    if not raw:
        return {}
    if "json" in headers.get("content-type", ""):
        try:
            data = json.loads(raw)
        except ValueError:
            raise fail(400, "Problems parsing JSON") from None
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return dict(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))
