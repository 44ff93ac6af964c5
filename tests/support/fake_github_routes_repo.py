"""Routes of the fake GitHub for repositories, commits, pull requests, their files and reviews."""
from __future__ import annotations

import time
from typing import Any

from tests.support import fake_github_git as git
from tests.support.fake_github_access import commit_or_422, explicit_role, find_commit, int_param, pull_of, \
    visible_repo
from tests.support.fake_github_http import ApiError, Ctx, Request, Response, Router, error_body, not_found, paginate
from tests.support.fake_github_payloads import ROLE_PERMISSION, iso, node_id
from tests.support.fake_github_state import Pull, Review

# GitHub lists at most 3000 files of a pull request.
MAX_PULL_FILES = 3000
_REVIEW_EVENTS = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}
_ROLE_FLAGS = ["pull", "triage", "push", "maintain", "admin"]
_ROLES = ["read", "triage", "write", "maintain", "admin"]


def register(router: Router) -> None:
    """Add the repository and pull request routes to `router`."""
    base = "/repos/{owner}/{repo}"
    router.add("GET", base, get_repo)
    router.add("GET", base + "/collaborators/{login}/permission", get_permission)
    router.add("GET", base + "/commits/{ref}/pulls", list_commit_pulls)
    router.add("GET", base + "/commits/{ref}", get_commit)
    router.add("GET", base + "/pulls", list_pulls)
    router.add("GET", base + "/pulls/{number}", get_pull)
    router.add("GET", base + "/pulls/{number}/files", list_pull_files)
    router.add("GET", base + "/pulls/{number}/merge", get_pull_merged)
    router.add("GET", base + "/pulls/{number}/reviews", list_reviews)
    router.add("GET", base + "/pulls/{number}/reviews/{review_id}", get_review)
    router.add("POST", base + "/pulls/{number}/reviews", create_review, needs=("pull_requests",))


def permission_flags(role: str | None) -> dict[str, bool]:
    """GitHub's `permissions` flags of a user with `role` (None: no role): each base role implies those below."""
    rank = _ROLES.index(role) if role else -1
    return {flag: i <= rank for i, flag in enumerate(_ROLE_FLAGS)}


def get_repo(ctx: Ctx, req: Request, owner: str, repo: str) -> Response:
    return Response(200, ctx.pay.repo(visible_repo(ctx, req, owner, repo)))


def get_permission(ctx: Ctx, req: Request, owner: str, repo: str, login: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    user = ctx.state.users.get(login.lower())
    if user is None:
        raise not_found()
    role = explicit_role(found, user)
    if role is None and not found.private:
        role = "read"  # anyone may read a public repository
    permission = ROLE_PERMISSION.get(role, "none") if role else "none"
    user_data = ctx.pay.user(user)
    user_data["permissions"] = permission_flags(role)
    user_data["role_name"] = role or "none"
    return Response(200, {"permission": permission, "role_name": role or "none", "user": user_data})


def get_commit(ctx: Ctx, req: Request, owner: str, repo: str, ref: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    sha = commit_or_422(ctx.state, found, ref)
    git_dir = git.local_git_dir(found.clone_url)
    details = git.commit_details(git_dir, sha) if git_dir is not None else None
    if details is None:
        stamp = {"name": "Unknown", "email": "unknown@example.com", "date": iso(found.created_at)}
        details = {"sha": sha, "tree": "0" * 40, "parents": [], "author": stamp, "committer": stamp,
                   "message": ""}
    url = f"{ctx.pay.repo_url(found)}/commits/{sha}"
    html = f"{ctx.pay.web}/{found.full_name}/commit/{sha}"
    data = {
        "sha": sha,
        "node_id": node_id("Commit", int(sha[:12], 16)),
        "commit": {
            "author": details["author"],
            "committer": details["committer"],
            "message": details["message"],
            "tree": {"sha": details["tree"], "url": f"{ctx.pay.repo_url(found)}/git/trees/{details['tree']}"},
            "url": f"{ctx.pay.repo_url(found)}/git/commits/{sha}",
            "comment_count": 0,
            "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None,
                             "verified_at": None},
        },
        "url": url,
        "html_url": html,
        "comments_url": f"{url}/comments",
        "author": None,
        "committer": None,
        "parents": [
            {"sha": p, "url": f"{ctx.pay.repo_url(found)}/commits/{p}",
             "html_url": f"{ctx.pay.web}/{found.full_name}/commit/{p}"}
            for p in details["parents"]
        ],
        "stats": {"total": 0, "additions": 0, "deletions": 0},
        "files": [],
    }
    return Response(200, data)


def list_commit_pulls(ctx: Ctx, req: Request, owner: str, repo: str, ref: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    sha = commit_or_422(ctx.state, found, ref)
    pulls = [
        p for p in _pulls(ctx, found.full_name)
        if sha in (p.head_sha, p.merge_commit_sha)
    ]
    items = [ctx.pay.pull(p, full=False) for p in pulls]
    page, headers = paginate(items, req.query, f"{ctx.pay.api}/repositories/{found.id}/commits/{sha}/pulls")
    return Response(200, page, headers)


def _pulls(ctx: Ctx, full_name: str) -> list[Pull]:
    return [p for p in ctx.state.issues.values() if isinstance(p, Pull) and p.repo == full_name]


def list_pulls(ctx: Ctx, req: Request, owner: str, repo: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    state_filter = req.query.get("state", "open")
    if state_filter not in ("open", "closed", "all"):
        raise ApiError(422, error_body(422, "Validation Failed", errors=[
            {"resource": "Search", "field": "state", "code": "invalid"}]))
    pulls = [p for p in _pulls(ctx, found.full_name) if state_filter in ("all", p.state)]
    if "head" in req.query:
        owner_part, _, ref = req.query["head"].rpartition(":")
        pulls = [p for p in pulls if p.head_ref == ref and (not owner_part or
                                                            p.head_repo.split("/")[0].lower() == owner_part.lower())]
    if "base" in req.query:
        pulls = [p for p in pulls if p.base_ref == req.query["base"]]
    sort = req.query.get("sort", "created")
    key = {"updated": lambda p: (p.updated_at, p.number)}.get(sort, lambda p: (p.created_at, p.number))
    pulls.sort(key=key, reverse=req.query.get("direction", "desc") != "asc")
    items = [ctx.pay.pull(p, full=False) for p in pulls]
    page, headers = paginate(items, req.query, f"{ctx.pay.api}/repositories/{found.id}/pulls")
    return Response(200, page, headers)


def get_pull(ctx: Ctx, req: Request, owner: str, repo: str, number: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    return Response(200, ctx.pay.pull(pull_of(ctx, found, number)))


def list_pull_files(ctx: Ctx, req: Request, owner: str, repo: str, number: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    pull = pull_of(ctx, found, number)
    files = ctx.pay.raw_pull_files(pull)[:MAX_PULL_FILES]
    url = f"{ctx.pay.api}/repositories/{found.id}/pulls/{pull.number}/files"
    page, headers = paginate(files, req.query, url)
    return Response(200, [ctx.pay.pull_file(pull, f) for f in page], headers)


def get_pull_merged(ctx: Ctx, req: Request, owner: str, repo: str, number: str) -> Response:
    pull = pull_of(ctx, visible_repo(ctx, req, owner, repo), number)
    if not pull.merged:
        raise not_found()
    return Response(204)


def list_reviews(ctx: Ctx, req: Request, owner: str, repo: str, number: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    pull = pull_of(ctx, found, number)
    bot = ctx.state.bot_login
    # A pending review is visible to its author only.
    reviews = [
        r for r in sorted(ctx.state.reviews.values(), key=lambda r: r.id)
        if r.repo == pull.repo and r.number == pull.number and (r.state != "PENDING" or r.user == bot)
    ]
    items = [ctx.pay.review(r) for r in reviews]
    url = f"{ctx.pay.api}/repositories/{found.id}/pulls/{pull.number}/reviews"
    page, headers = paginate(items, req.query, url)
    return Response(200, page, headers)


def get_review(ctx: Ctx, req: Request, owner: str, repo: str, number: str, review_id: str) -> Response:
    pull = pull_of(ctx, visible_repo(ctx, req, owner, repo), number)
    review = ctx.state.reviews.get(int_param(review_id))
    if review is None or (review.repo, review.number) != (pull.repo, pull.number):
        raise not_found()
    return Response(200, ctx.pay.review(review))


def create_review(ctx: Ctx, req: Request, owner: str, repo: str, number: str) -> Response:
    found = visible_repo(ctx, req, owner, repo, write=True)
    pull = pull_of(ctx, found, number)
    body: dict[str, Any] = req.body if isinstance(req.body, dict) else {}
    event = body.get("event")
    if event is not None and event not in _REVIEW_EVENTS:
        raise ApiError(422, error_body(422, "Unprocessable Entity", errors=[f"Invalid event: {event}"]))
    text = body.get("body") or ""
    if event in ("REQUEST_CHANGES", "COMMENT") and not text and not body.get("comments"):
        raise ApiError(422, error_body(422, "Unprocessable Entity", errors=[
            f"Review body is required when using {event} event"]))
    commit_id = body.get("commit_id") or pull.head_sha
    if find_commit(ctx.state, found, commit_id) is None:
        raise ApiError(422, error_body(422, "Unprocessable Entity", errors=["Commit not found"]))
    state = _REVIEW_EVENTS.get(event, "PENDING")
    review = Review(
        id=ctx.state.next_id("review"),
        repo=pull.repo,
        number=pull.number,
        user=ctx.state.bot_login,
        state=state,
        body=text,
        commit_id=commit_id,
        submitted_at=None if state == "PENDING" else time.time(),
    )
    ctx.state.reviews[review.id] = review
    return Response(200, ctx.pay.review(review))
