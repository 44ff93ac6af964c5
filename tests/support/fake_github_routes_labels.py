"""Routes of the fake GitHub for a repository's labels: get one, list, create (as GitHub documents them at
https://docs.github.com/rest/issues/labels)."""
from __future__ import annotations

import re
from urllib.parse import unquote

from tests.support.fake_github_access import visible_repo
from tests.support.fake_github_http import Ctx, Request, Response, Router, not_found, paginate, validation_failed
from tests.support.fake_github_state import Label

_DOCS = "https://docs.github.com/rest/issues/labels#create-a-label"
_COLOR = re.compile(r"^[0-9a-fA-F]{6}$")


def register(router: Router) -> None:
    """Add the label routes to `router`."""
    base = "/repos/{owner}/{repo}/labels"
    router.add("GET", base, list_labels)
    router.add("POST", base, create_label, needs=("issues", "pull_requests"))
    router.add("GET", base + "/{name}", get_label)


def get_label(ctx: Ctx, req: Request, owner: str, repo: str, name: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    label = ctx.state.labels.get((found.full_name, unquote(name).lower()))
    if label is None:
        raise not_found()
    return Response(200, ctx.pay.label(label))


def list_labels(ctx: Ctx, req: Request, owner: str, repo: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    labels = sorted((lb for (r, _), lb in ctx.state.labels.items() if r == found.full_name), key=lambda lb: lb.id)
    page, headers = paginate([ctx.pay.label(lb) for lb in labels], req.query,
                             f"{ctx.pay.api}/repositories/{found.id}/labels")
    return Response(200, page, headers)


def create_label(ctx: Ctx, req: Request, owner: str, repo: str) -> Response:
    """201 with the label; 422 `already_exists` when the repository has one of that name in any case."""
    found = visible_repo(ctx, req, owner, repo, write=True)
    body = req.body if isinstance(req.body, dict) else {}
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise validation_failed("Label", "name", "missing_field" if name is None else "invalid", doc=_DOCS)
    color = str(body.get("color") or "ededed").removeprefix("#")
    if not _COLOR.match(color):
        raise validation_failed("Label", "color", "invalid", doc=_DOCS)
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 100):
        raise validation_failed("Label", "description", "invalid", doc=_DOCS)
    if (found.full_name, name.lower()) in ctx.state.labels:
        raise validation_failed("Label", "name", "already_exists", doc=_DOCS)
    label = Label(id=ctx.state.next_id("label"), repo=found.full_name, name=name, color=color.lower(),
                  description=description)
    ctx.state.labels[(found.full_name, name.lower())] = label
    payload = ctx.pay.label(label)
    return Response(201, payload, {"Location": payload["url"]})
