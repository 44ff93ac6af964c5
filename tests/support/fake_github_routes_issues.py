"""Routes of the fake GitHub for issues (pull requests included), their labels, comments and reactions."""
from __future__ import annotations

import calendar
import time
from typing import Any, Optional

from tests.support.fake_github_access import int_param, issue_of, visible_repo
from tests.support.fake_github_http import ApiError, Ctx, Request, Response, Router, not_found, paginate, \
    validation_failed
from tests.support.fake_github_payloads import REACTION_CONTENTS
from tests.support.fake_github_state import Comment, Issue, Label, Reaction, Repo

MAX_COMMENT_LENGTH = 65536
_COMMENT_DOCS = "https://docs.github.com/rest/issues/comments#create-an-issue-comment"
_ISSUE_PERMS = ("issues", "pull_requests")  # GitHub takes either for comments on pull requests
_ISSUE_DOCS = "https://docs.github.com/rest/issues/issues#create-an-issue"
MAX_TITLE_LENGTH = 256


def register(router: Router) -> None:
    """Add the issue, comment and reaction routes to `router`."""
    base = "/repos/{owner}/{repo}/issues"
    router.add("GET", base + "/comments", list_repo_comments)
    router.add("GET", base + "/comments/{comment_id}", get_comment)
    router.add("PATCH", base + "/comments/{comment_id}", edit_comment, needs=_ISSUE_PERMS)
    router.add("DELETE", base + "/comments/{comment_id}", delete_comment, needs=_ISSUE_PERMS)
    router.add("GET", base + "/comments/{comment_id}/reactions", list_comment_reactions)
    router.add("POST", base + "/comments/{comment_id}/reactions", react_to_comment, needs=_ISSUE_PERMS)
    router.add("DELETE", base + "/comments/{comment_id}/reactions/{reaction_id}", delete_comment_reaction,
               needs=_ISSUE_PERMS)
    router.add("GET", base, list_issues)
    router.add("POST", base, create_issue, needs=("issues",))
    router.add("GET", base + "/{number}", get_issue)
    router.add("PATCH", base + "/{number}", edit_issue, needs=_ISSUE_PERMS)
    router.add("GET", base + "/{number}/comments", list_comments)
    router.add("POST", base + "/{number}/comments", create_comment, needs=_ISSUE_PERMS)
    router.add("GET", base + "/{number}/reactions", list_issue_reactions)
    router.add("POST", base + "/{number}/reactions", react_to_issue, needs=_ISSUE_PERMS)


def get_issue(ctx: Ctx, req: Request, owner: str, repo: str, number: str) -> Response:
    return Response(200, ctx.pay.issue(issue_of(ctx, visible_repo(ctx, req, owner, repo), number)))


def _title(req: Request, required: bool) -> Optional[str]:
    title = req.body.get("title") if isinstance(req.body, dict) else None
    if title is None:
        if required:
            raise validation_failed("Issue", "title", "missing_field", doc=_ISSUE_DOCS)
        return None
    if isinstance(title, int) and not isinstance(title, bool):
        title = str(title)  # GitHub takes a number as a title
    if not isinstance(title, str) or not title.strip():
        raise validation_failed("Issue", "title", "invalid", doc=_ISSUE_DOCS)
    if len(title) > MAX_TITLE_LENGTH:
        raise validation_failed("Issue", "title", "custom", "title is too long (maximum is 256 characters)",
                                doc=_ISSUE_DOCS)
    return title


def _issue_body(req: Request) -> Optional[str]:
    body = req.body.get("body") if isinstance(req.body, dict) else None
    if body is not None and not isinstance(body, str):
        raise validation_failed("Issue", "body", "invalid", doc=_ISSUE_DOCS)
    if body is not None and len(body) > MAX_COMMENT_LENGTH:
        raise validation_failed("Issue", "body", "custom", f"body is too long (maximum is {MAX_COMMENT_LENGTH} "
                                "characters)", doc=_ISSUE_DOCS)
    return body


def _label_names(ctx: Ctx, repo: Repo, req: Request) -> Optional[list[str]]:
    """The `labels` of a request (names, or objects with a name), each created the way GitHub creates a label an
    issue names that the repository lacks: colour ededed, no description."""
    raw = req.body.get("labels") if isinstance(req.body, dict) else None
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise validation_failed("Issue", "labels", "invalid", doc=_ISSUE_DOCS)
    names: list[str] = []
    for item in raw:
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str) or not name.strip():
            raise validation_failed("Label", "name", "invalid", doc=_ISSUE_DOCS)
        label = ctx.state.labels.get((repo.full_name, name.lower()))
        if label is None:
            label = Label(id=ctx.state.next_id("label"), repo=repo.full_name, name=name)
            ctx.state.labels[(repo.full_name, name.lower())] = label
        if label.name not in names:
            names.append(label.name)
    return names


def create_issue(ctx: Ctx, req: Request, owner: str, repo: str) -> Response:
    found = visible_repo(ctx, req, owner, repo, write=True)
    title = _title(req, required=True)
    body = _issue_body(req)
    labels = _label_names(ctx, found, req) or []
    found.last_number += 1
    login = ctx.state.bot_login
    ctx.state.ensure_user(login)
    issue = Issue(repo=found.full_name, number=found.last_number, id=ctx.state.next_id("issue"), title=title or "",
                  body=body or "", user=login, labels=labels)
    ctx.state.issues[(found.full_name, issue.number)] = issue
    payload = ctx.pay.issue(issue)
    return Response(201, payload, {"Location": payload["url"]})


def edit_issue(ctx: Ctx, req: Request, owner: str, repo: str, number: str) -> Response:
    found = visible_repo(ctx, req, owner, repo, write=True)
    issue = issue_of(ctx, found, number)
    title = _title(req, required=False)
    body = _issue_body(req)
    labels = _label_names(ctx, found, req)
    state = req.body.get("state") if isinstance(req.body, dict) else None
    if state not in (None, "open", "closed"):
        raise validation_failed("Issue", "state", "invalid", doc=_ISSUE_DOCS)
    reason = req.body.get("state_reason") if isinstance(req.body, dict) else None
    if reason not in (None, "completed", "not_planned", "reopened"):
        raise validation_failed("Issue", "state_reason", "invalid", doc=_ISSUE_DOCS)
    if title is not None:
        issue.title = title
    if isinstance(req.body, dict) and "body" in req.body:
        issue.body = body or ""
    if labels is not None:
        issue.labels = labels
    if state is not None and state != issue.state:
        issue.state = state
        issue.closed_at = time.time() if state == "closed" else None
        # GitHub: closing without a reason is `completed`; reopening sets `reopened`.
        issue.state_reason = (reason or "completed") if state == "closed" else "reopened"
    elif reason is not None and issue.state == "closed":
        issue.state_reason = reason
    issue.updated_at = time.time()
    return Response(200, ctx.pay.issue(issue))


_LIST_DOCS = "https://docs.github.com/rest/issues/issues#list-repository-issues"


def list_issues(ctx: Ctx, req: Request, owner: str, repo: str) -> Response:
    """`GET /repos/{owner}/{repo}/issues`: pull requests included (they carry `pull_request`), `state` open (default),
    closed or all, `labels` a comma-separated list of names all of which an issue must carry (any case), `creator`,
    `sort` created (default) or updated, `direction` desc (default) or asc, paged."""
    found = visible_repo(ctx, req, owner, repo)
    state = req.query.get("state", "open")
    if state not in ("open", "closed", "all"):
        raise validation_failed("Issue", "state", "invalid", doc=_LIST_DOCS)
    wanted = {name.strip().lower() for name in req.query.get("labels", "").split(",") if name.strip()}
    creator = req.query.get("creator")
    sort = req.query.get("sort", "created")
    if sort not in ("created", "updated", "comments"):
        raise validation_failed("Issue", "sort", "invalid", doc=_LIST_DOCS)
    issues = [
        i for (r, _), i in ctx.state.issues.items()
        if r == found.full_name and (state == "all" or i.state == state)
        and wanted <= {name.lower() for name in i.labels} and (creator is None or i.user.lower() == creator.lower())
    ]
    issues.sort(key=lambda i: (i.updated_at if sort == "updated" else i.created_at, i.number),
                reverse=req.query.get("direction", "desc") != "asc")
    page, headers = paginate([ctx.pay.issue(i) for i in issues], req.query,
                             f"{ctx.pay.api}/repositories/{found.id}/issues")
    return Response(200, page, headers)


# ---- comments ------------------------------------------------------------------

def _parse_since(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return float(calendar.timegm(time.strptime(value.replace("Z", ""), "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        raise validation_failed("Issue", "since", "invalid") from None


def _comments(ctx: Ctx, full_name: str, number: Optional[int], since: Optional[float]) -> list[Comment]:
    return [
        c for c in sorted(ctx.state.comments.values(), key=lambda c: c.id)
        if c.repo == full_name and (number is None or c.number == number)
        and (since is None or c.updated_at >= since)
    ]


def list_comments(ctx: Ctx, req: Request, owner: str, repo: str, number: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    issue = issue_of(ctx, found, number)
    items = [ctx.pay.comment(c) for c in _comments(ctx, found.full_name, issue.number,
                                                     _parse_since(req.query.get("since")))]
    url = f"{ctx.pay.api}/repositories/{found.id}/issues/{issue.number}/comments"
    page, headers = paginate(items, req.query, url)
    return Response(200, page, headers)


def list_repo_comments(ctx: Ctx, req: Request, owner: str, repo: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    comments = _comments(ctx, found.full_name, None, _parse_since(req.query.get("since")))
    if req.query.get("direction") == "desc":
        comments.reverse()
    items = [ctx.pay.comment(c) for c in comments]
    page, headers = paginate(items, req.query, f"{ctx.pay.api}/repositories/{found.id}/issues/comments")
    return Response(200, page, headers)


def _checked_body(req: Request) -> str:
    body = req.body.get("body") if isinstance(req.body, dict) else None
    if body is None:
        raise validation_failed("IssueComment", "body", "missing_field", doc=_COMMENT_DOCS)
    if not isinstance(body, str):
        raise validation_failed("IssueComment", "body", "invalid", doc=_COMMENT_DOCS)
    if len(body) > MAX_COMMENT_LENGTH:
        raise validation_failed(
            "IssueComment", "data", "unprocessable",
            f"Body is too long (maximum is {MAX_COMMENT_LENGTH} characters)", doc=_COMMENT_DOCS)
    return body


def create_comment(ctx: Ctx, req: Request, owner: str, repo: str, number: str) -> Response:
    found = visible_repo(ctx, req, owner, repo, write=True)
    issue = issue_of(ctx, found, number)
    body = _checked_body(req)
    comment = post_comment(ctx, issue, ctx.state.bot_login, body, via_app=True)
    return Response(201, ctx.pay.comment(comment), {"Location": ctx.pay.comment(comment)["url"]})


def post_comment(ctx: Ctx, issue: Issue, login: str, body: str, via_app: bool) -> Comment:
    """Store a new comment on `issue` by `login` and bump the issue's updated_at."""
    now = time.time()
    comment = Comment(
        id=ctx.state.next_id("comment"), repo=issue.repo, number=issue.number, user=login, body=body,
        created_at=now, updated_at=now, via_app=via_app,
    )
    ctx.state.ensure_user(login)
    ctx.state.comments[comment.id] = comment
    issue.updated_at = now
    return comment


def _comment_of(ctx: Ctx, repo: Repo, comment_id: str) -> Comment:
    comment = ctx.state.comments.get(int_param(comment_id))
    if comment is None or comment.repo != repo.full_name:
        raise not_found()
    return comment


def get_comment(ctx: Ctx, req: Request, owner: str, repo: str, comment_id: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    return Response(200, ctx.pay.comment(_comment_of(ctx, found, comment_id)))


def edit_comment(ctx: Ctx, req: Request, owner: str, repo: str, comment_id: str) -> Response:
    found = visible_repo(ctx, req, owner, repo, write=True)
    comment = _comment_of(ctx, found, comment_id)
    comment.body = _checked_body(req)
    comment.updated_at = time.time()
    return Response(200, ctx.pay.comment(comment))


def delete_comment(ctx: Ctx, req: Request, owner: str, repo: str, comment_id: str) -> Response:
    found = visible_repo(ctx, req, owner, repo, write=True)
    comment = _comment_of(ctx, found, comment_id)
    del ctx.state.comments[comment.id]
    for reaction_id in [r.id for r in ctx.state.reactions.values() if r.subject == ("comment", comment.id)]:
        del ctx.state.reactions[reaction_id]
    return Response(204)


# ---- reactions -------------------------------------------------------------------

def _list_reactions(ctx: Ctx, req: Request, subject: tuple, url: str) -> Response:
    content = req.query.get("content")
    reactions = [
        r for r in sorted(ctx.state.reactions.values(), key=lambda r: r.id)
        if r.subject == subject and (content is None or r.content == content)
    ]
    page, headers = paginate([ctx.pay.reaction(r) for r in reactions], req.query, url)
    return Response(200, page, headers)


def _react(ctx: Ctx, req: Request, subject: tuple) -> Response:
    content: Any = req.body.get("content") if isinstance(req.body, dict) else None
    if content not in REACTION_CONTENTS:
        raise validation_failed("Reaction", "content", "custom", "content is not included in the list",
                                doc="https://docs.github.com/rest/reactions/reactions")
    login = ctx.state.bot_login
    for reaction in ctx.state.reactions.values():
        if reaction.subject == subject and reaction.user == login and reaction.content == content:
            return Response(200, ctx.pay.reaction(reaction))
    reaction = Reaction(id=ctx.state.next_id("reaction"), subject=subject, user=login, content=content,
                        created_at=time.time())
    ctx.state.reactions[reaction.id] = reaction
    return Response(201, ctx.pay.reaction(reaction))


def list_comment_reactions(ctx: Ctx, req: Request, owner: str, repo: str, comment_id: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    comment = _comment_of(ctx, found, comment_id)
    url = f"{ctx.pay.api}/repositories/{found.id}/issues/comments/{comment.id}/reactions"
    return _list_reactions(ctx, req, ("comment", comment.id), url)


def react_to_comment(ctx: Ctx, req: Request, owner: str, repo: str, comment_id: str) -> Response:
    found = visible_repo(ctx, req, owner, repo, write=True)
    return _react(ctx, req, ("comment", _comment_of(ctx, found, comment_id).id))


def delete_comment_reaction(ctx: Ctx, req: Request, owner: str, repo: str, comment_id: str,
                            reaction_id: str) -> Response:
    found = visible_repo(ctx, req, owner, repo, write=True)
    comment = _comment_of(ctx, found, comment_id)
    reaction = ctx.state.reactions.get(int_param(reaction_id))
    if reaction is None or reaction.subject != ("comment", comment.id):
        raise not_found()
    if reaction.user != ctx.state.bot_login:
        raise ApiError(403, {"message": "Must have admin rights to Repository.", "status": "403"})
    del ctx.state.reactions[reaction.id]
    return Response(204)


def list_issue_reactions(ctx: Ctx, req: Request, owner: str, repo: str, number: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    issue = issue_of(ctx, found, number)
    url = f"{ctx.pay.api}/repositories/{found.id}/issues/{issue.number}/reactions"
    return _list_reactions(ctx, req, ("issue", issue.repo, issue.number), url)


def react_to_issue(ctx: Ctx, req: Request, owner: str, repo: str, number: str) -> Response:
    issue = issue_of(ctx, visible_repo(ctx, req, owner, repo, write=True), number)
    return _react(ctx, req, ("issue", issue.repo, issue.number))
