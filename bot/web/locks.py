"""`GET /locks`: every workspace lock on one page; `POST /locks/unlock`: an admin, or a user signed in with GitHub
with enough of a role on the repository, releases one."""
from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request

from werkzeug.exceptions import TooManyRequests

from bot.adapters.github_roles import RoleLookupError
from bot.models import LockInfo
from bot.state import rate_limits
from bot.web import present, repo_roles, unlock_rights, unlocking
from bot.web.auth import csrf_ok, current_admin, safe_next
from bot.web.github_auth import current_github_user, current_sign_in_id

if TYPE_CHECKING:
    from bot.services import WebServices

log = logging.getLogger(__name__)
bp = Blueprint("locks", __name__)
MAX_FILTER_CHARS = 200
PAGE_SIZE = 200  # rows per page: 10,000 rows of HTML would be 12 MB for a phone to lay out
LISTING = "listing"  # the name of the snapshot's present.Listing, built once per lock version
# Each unlock attempt by a GitHub user costs one role lookup with the App's token (5,000 an hour per installation):
# a user gets this many a minute, whatever they click or post.
UNLOCK_ATTEMPTS_PER_MINUTE = 10


def filters() -> tuple[str, str]:
    """(repo, text) from the query string, bounded."""
    return (request.args.get("repo", "").strip()[:MAX_FILTER_CHARS],
            request.args.get("q", "").strip()[:MAX_FILTER_CHARS])


bp.add_app_template_filter(present.summary_parts, "summary_parts")


@bp.get("/")
def index():  # type: ignore[no-untyped-def]
    return redirect("/locks", 302)


@bp.get("/locks")
def page():  # type: ignore[no-untyped-def]
    svc = current_app.extensions["tfbot"]
    repo, text = filters()
    snapshot = svc.lock_cache.snapshot()  # this process's copy: one small read while no lock changed
    listing = snapshot.derived(LISTING, present.listing)
    now = time.time()
    matching = listing.select(repo, text)
    pages = max(1, -(-len(matching) // PAGE_SIZE))
    number = min(max(1, request.args.get("page", 1, type=int) or 1), pages)
    shown = matching[(number - 1) * PAGE_SIZE:number * PAGE_SIZE]
    api_url = svc.config.github.api_url
    rows = [present.lock_row(lk, now, api_url, snapshot.waiting(lk)) for lk in shown]
    response = current_app.make_response(render_template(
        "web/locks.html",
        rows=rows,
        matching=len(matching),
        total=len(listing.locks),
        first=(number - 1) * PAGE_SIZE + 1,
        page=number,
        pages=pages,
        repos=listing.repos,
        repo=repo,
        text=text,
        counts=present.state_counts(matching) if repo or text else listing.counts,
        admin=current_admin(),
        unlockable=_unlockable(svc, shown),
        here=request.full_path.rstrip("?"),
    ))
    # The auto-refresh asks with If-None-Match: an unchanged page costs the browser nothing to swap.
    response.add_etag()
    return response.make_conditional(request)


def _unlockable(svc: WebServices, shown: list[LockInfo]) -> set[tuple[str, str, str]]:
    """(repo, dir, workspace) of the shown locks a user signed in with GitHub gets an unlock button for: from the
    roles kept at their sign-in, with no call to GitHub."""
    login = None if current_admin() else current_github_user()
    return repo_roles.unlockable(svc, current_sign_in_id(), shown) if login else set()


def _count_attempt(svc: WebServices, login: str) -> None:
    """Count one unlock attempt by GitHub user `login`; aborts with 429 past UNLOCK_ATTEMPTS_PER_MINUTE."""
    allowed, wait = rate_limits.take(svc.redis, "unlock", login, UNLOCK_ATTEMPTS_PER_MINUTE, 60)
    if not allowed:
        log.warning("refused an unlock attempt by %s: more than %d this minute", login, UNLOCK_ATTEMPTS_PER_MINUTE)
        raise TooManyRequests(f"Nothing was unlocked: {login} tried to unlock more than {UNLOCK_ATTEMPTS_PER_MINUTE} "
                              f"times this minute, and each try asks GitHub. Try again in {wait} s.",
                              retry_after=wait)


def _github_unlock(svc: WebServices, login: str, repo: str, reason: str) -> bool:
    """Check, at this moment, that GitHub gives `login` enough of a role on `repo` to unlock; aborts with why not.
    Returns whether the role also lets them release a flagged lock (GitHub's admin role)."""
    problem = unlock_rights.reason_problem(reason)
    if problem:
        abort(400, problem)
    try:
        role = repo_roles.role_now(svc, login, repo, current_sign_in_id())
    except RoleLookupError as exc:
        abort(503, f"GitHub could not tell what {login} may do on {repo} ({exc}); nothing was unlocked. "
                   "Try again in a moment.")
    needed = svc.config.server.unlock_permission
    if not unlock_rights.at_least(role, needed):
        log.warning("refused the unlock of a lock of %s by %s: GitHub gives them %s, %s is needed", repo, login,
                    role, needed)
        abort(403, f"Nothing was unlocked: GitHub gives {login} the {role} role on {repo}; unlocking from this page "
                   f"takes {needed} or more (server.unlock_permission).")
    return unlock_rights.at_least(role, unlock_rights.OVERRIDE_ROLE)


@bp.post("/locks/unlock")
def unlock():  # type: ignore[no-untyped-def]
    admin = current_admin()
    by = admin or current_github_user()
    if by is None:
        abort(401, "Sign in to unlock: with GitHub, or as an admin.")
    if not csrf_ok():
        abort(403, "The form expired or did not come from this page: reload the page and try again.")
    svc = current_app.extensions["tfbot"]
    if admin is None:
        _count_attempt(svc, by)
    form = request.form
    try:
        ref = json.loads(form["lock"])
        where = (str(ref["repo"]), str(ref["dir"]), str(ref["workspace"]))
        token = int(ref["token"])
    except (KeyError, ValueError, TypeError):
        abort(400, "The unlock form does not name a lock (repository, dir, workspace and lock token).")
    reason = str(form.get("reason", ""))
    if admin is not None:
        via, may_override, reason = unlocking.FROM_PAGE, True, reason[:unlock_rights.MAX_REASON_CHARS]
    else:
        via, may_override = unlocking.FROM_PAGE_GITHUB, _github_unlock(svc, by, where[0], reason)
    try:
        held, waiter = unlocking.release(svc, *where, by=by, via=via, token=token, reason=reason,
                                         may_override=may_override)
    except unlocking.UnlockRefused as exc:
        flash(str(exc), "warn")
        return redirect(safe_next(form.get("next")), 303)
    if held is None:
        flash(f"Nothing was unlocked: the lock of {where[0]} {where[1]} ({where[2]}) is free now or changed "
              "hands since the page was loaded. Check the list again.", "warn")
    else:
        unlocking.queue_announcement(svc, held, by, via, waiter, reason)
        handed = f" It goes to #{waiter['pull']}, which tfbot plans now." if waiter else ""
        flash(f"Unlocked {held.project} in {held.repo} (held by #{held.pull}).{handed}", "ok")
    return redirect(safe_next(form.get("next")), 303)
