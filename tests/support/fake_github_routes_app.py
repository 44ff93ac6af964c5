"""Routes of the fake GitHub that concern the App itself: JWT endpoints, tokens, deliveries, users, GraphQL."""
from __future__ import annotations

import time
from typing import Any, Optional

from tests.support import fake_github_graphql
from tests.support.fake_github_auth import mint_token
from tests.support.fake_github_http import (
    ApiError,
    Ctx,
    Request,
    Response,
    Router,
    error_body,
    fail,
    not_found,
    page_window,
    paginate,
)
from tests.support.fake_github_payloads import iso
from tests.support.fake_github_state import Delivery, Installation

_LEVELS = {"read": 1, "write": 2, "admin": 3}


def register(router: Router) -> None:
    """Add the app-level routes to `router`."""
    router.add("GET", "/app", get_app, auth="jwt")
    router.add("GET", "/app/installations", list_installations, auth="jwt")
    router.add("GET", "/app/installations/{installation_id}", get_installation, auth="jwt")
    router.add("POST", "/app/installations/{installation_id}/access_tokens", create_token, auth="jwt")
    router.add("GET", "/repos/{owner}/{repo}/installation", get_repo_installation, auth="jwt")
    router.add("GET", "/orgs/{login}/installation", get_account_installation, auth="jwt")
    router.add("GET", "/users/{login}/installation", get_account_installation, auth="jwt")
    router.add("GET", "/app/hook/deliveries", list_deliveries, auth="jwt")
    router.add("GET", "/app/hook/deliveries/{delivery_id}", get_delivery, auth="jwt")
    router.add("POST", "/app/hook/deliveries/{delivery_id}/attempts", redeliver, auth="jwt")
    router.add("GET", "/installation/repositories", list_installation_repos)
    router.add("DELETE", "/installation/token", revoke_token)
    router.add("GET", "/users/{login}", get_user)
    router.add("POST", "/graphql", graphql)


def _int(value: str) -> int:
    if not value.isdigit():
        raise not_found()
    return int(value)


def _installation(ctx: Ctx, installation_id: str) -> Installation:
    inst = ctx.state.installations.get(_int(installation_id))
    if inst is None:
        raise not_found()
    return inst


def get_app(ctx: Ctx, req: Request) -> Response:
    return Response(200, ctx.pay.app())


def list_installations(ctx: Ctx, req: Request) -> Response:
    items = [ctx.pay.installation(i) for i in sorted(ctx.state.installations.values(), key=lambda i: i.id)]
    page, headers = paginate(items, req.query, f"{ctx.pay.api}/app/installations")
    return Response(200, page, headers)


def get_installation(ctx: Ctx, req: Request, installation_id: str) -> Response:
    return Response(200, ctx.pay.installation(_installation(ctx, installation_id)))


def get_repo_installation(ctx: Ctx, req: Request, owner: str, repo: str) -> Response:
    found = ctx.state.repo(f"{owner}/{repo}")
    if found is None or found.installation_id is None:
        raise not_found()
    return Response(200, ctx.pay.installation(ctx.state.installations[found.installation_id]))


def get_account_installation(ctx: Ctx, req: Request, login: str) -> Response:
    for inst in ctx.state.installations.values():
        if inst.account_login.lower() == login.lower():
            return Response(200, ctx.pay.installation(inst))
    raise not_found()


def create_token(ctx: Ctx, req: Request, installation_id: str) -> Response:
    inst = _installation(ctx, installation_id)
    if inst.suspended:
        raise fail(403, "This installation has been suspended")
    body = req.body if isinstance(req.body, dict) else {}
    permissions = _granted_permissions(inst, body.get("permissions") or {})
    repositories = _selected_repositories(ctx, inst, body)
    token = mint_token(ctx.state, inst.id, permissions, repositories)
    data: dict[str, Any] = {
        "token": token.token,
        "expires_at": iso(token.expires_at),
        "permissions": dict(token.permissions),
        "repository_selection": "selected" if repositories is not None else inst.repository_selection,
    }
    if repositories is not None:
        data["repositories"] = [ctx.pay.repo(ctx.state.repo(name), full=False) for name in sorted(repositories)]
    return Response(201, data)


def _granted_permissions(inst: Installation, requested: Any) -> dict[str, str]:
    # A token may ask for less than the installation has, never more.
    if not isinstance(requested, dict) or not requested:
        return dict(inst.permissions)
    for name, level in requested.items():
        have = _LEVELS.get(inst.permissions.get(name, ""), 0)
        if _LEVELS.get(level, 99) > have:
            raise ApiError(422, error_body(422, "The permissions requested are not granted to this installation."))
    return dict(requested)


def _selected_repositories(ctx: Ctx, inst: Installation, body: dict[str, Any]) -> Optional[set[str]]:
    names, ids = body.get("repositories"), body.get("repository_ids")
    if not names and not ids:
        return None
    mine = {r.full_name.lower(): r for r in ctx.state.repos.values() if r.installation_id == inst.id}
    selected = set()
    for name in names or []:
        full = f"{inst.account_login}/{name}".lower() if "/" not in name else name.lower()
        if full not in mine:
            raise ApiError(422, error_body(
                422, "There is at least one repository that does not exist or is not accessible to the parent "
                     "installation."))
        selected.add(mine[full].full_name.lower())
    for repo_id in ids or []:
        match = [r for r in mine.values() if r.id == repo_id]
        if not match:
            raise ApiError(422, error_body(
                422, "There is at least one repository that does not exist or is not accessible to the parent "
                     "installation."))
        selected.add(match[0].full_name.lower())
    return selected


def list_installation_repos(ctx: Ctx, req: Request) -> Response:
    token = req.token
    assert token is not None
    repos = [
        r for r in sorted(ctx.state.repos.values(), key=lambda r: r.id)
        if r.installation_id == token.installation_id
        and (token.repositories is None or r.full_name.lower() in token.repositories)
    ]
    items = [ctx.pay.repo(r, full=False) for r in repos]
    page, headers = paginate(items, req.query, f"{ctx.pay.api}/installation/repositories")
    selection = "selected" if token.repositories is not None else "all"
    return Response(200, {"total_count": len(items), "repository_selection": selection, "repositories": page},
                    headers)


def revoke_token(ctx: Ctx, req: Request) -> Response:
    assert req.token is not None
    req.token.revoked = True
    return Response(204)


def get_user(ctx: Ctx, req: Request, login: str) -> Response:
    user = ctx.state.users.get(login.lower())
    if user is None:
        raise not_found()
    return Response(200, ctx.pay.user_full(user))


# ---- webhook deliveries ------------------------------------------------------

def list_deliveries(ctx: Ctx, req: Request) -> Response:
    # Newest first, paged by an opaque cursor (here: the last id shown), as GitHub pages deliveries.
    _, per_page = page_window(req.query)
    deliveries = sorted(ctx.state.deliveries.values(), key=lambda d: d.id, reverse=True)
    cursor = req.query.get("cursor")
    if cursor:
        if not cursor.isdigit():
            raise ApiError(422, error_body(422, "Invalid cursor"))
        deliveries = [d for d in deliveries if d.id < int(cursor)]
    page = deliveries[:per_page]
    headers = {}
    if len(deliveries) > per_page:
        params = f"per_page={per_page}&cursor={page[-1].id}"
        headers["Link"] = f'<{ctx.pay.api}/app/hook/deliveries?{params}>; rel="next"'
    return Response(200, [ctx.pay.delivery(d) for d in page], headers)


def _delivery(ctx: Ctx, delivery_id: str) -> Delivery:
    delivery = ctx.state.deliveries.get(_int(delivery_id))
    if delivery is None:
        raise not_found()
    return delivery


def get_delivery(ctx: Ctx, req: Request, delivery_id: str) -> Response:
    return Response(200, ctx.pay.delivery(_delivery(ctx, delivery_id), full=True))


def redeliver(ctx: Ctx, req: Request, delivery_id: str) -> Response:
    original = _delivery(ctx, delivery_id)
    state = ctx.state
    state.redelivery_attempts.append(original.id)
    attempt = Delivery(
        id=state.next_id("delivery"),
        guid=original.guid,
        event=original.event,
        action=original.action,
        status_code=200,
        installation_id=original.installation_id,
        repository_id=original.repository_id,
        payload=original.payload,
        request_headers=dict(original.request_headers),
        delivered_at=time.time(),
        redelivery=True,
    )
    state.deliveries[attempt.id] = attempt
    hook = state.on_redeliver
    if hook is None:
        return Response(202, {})
    summary = ctx.pay.delivery(attempt, full=True)

    def deliver() -> None:
        # Outside the lock: the hook may post to the bot, which calls the fake back.
        status = hook(summary)
        if isinstance(status, int):
            with state.lock:
                attempt.status_code = status

    return Response(202, {}, after=deliver)


# ---- GraphQL: aliased mutations, answered by tests/support/fake_github_graphql.py -------

def graphql(ctx: Ctx, req: Request) -> Response:
    # Permissions are checked per mutation, as GitHub does: a document may write comments and check runs.
    return fake_github_graphql.answer(ctx, req)
