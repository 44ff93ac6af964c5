"""`GET /locks`: every workspace lock on one page; `POST /locks/unlock`: an admin releases one."""
from __future__ import annotations

import json
import time

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request

from bot.web import present, unlocking
from bot.web.auth import csrf_ok, current_admin, safe_next

bp = Blueprint("locks", __name__)
MAX_FILTER_CHARS = 200
PAGE_SIZE = 200  # rows per page: 10,000 rows of HTML would be 12 MB for a phone to lay out
LISTING = "listing"  # the name of the snapshot's present.Listing, built once per lock version


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
        here=request.full_path.rstrip("?"),
    ))
    # The auto-refresh asks with If-None-Match: an unchanged page costs the browser nothing to swap.
    response.add_etag()
    return response.make_conditional(request)


@bp.post("/locks/unlock")
def unlock():  # type: ignore[no-untyped-def]
    admin = current_admin()
    if admin is None:
        abort(401, "Sign in as an admin to unlock.")
    if not csrf_ok():
        abort(403, "The form expired or did not come from this page: reload the page and try again.")
    form = request.form
    try:
        ref = json.loads(form["lock"])
        where = (str(ref["repo"]), str(ref["dir"]), str(ref["workspace"]))
        token = int(ref["token"])
    except (KeyError, ValueError, TypeError):
        abort(400, "The unlock form does not name a lock (repository, dir, workspace and lock token).")
    svc = current_app.extensions["tfbot"]
    try:
        held, waiter = unlocking.release(svc, *where, by=admin, via=unlocking.FROM_PAGE, token=token,
                                         reason=str(form.get("reason", ""))[:500])
    except unlocking.UnlockRefused as exc:
        flash(str(exc), "warn")
        return redirect(safe_next(form.get("next")), 303)
    if held is None:
        flash(f"Nothing was unlocked: the lock of {where[0]} {where[1]} ({where[2]}) is free now or changed "
              "hands since the page was loaded. Check the list again.", "warn")
    else:
        unlocking.queue_announcement(svc, held, admin, unlocking.FROM_PAGE, waiter)
        handed = f" It goes to #{waiter['pull']}, which tfbot plans now." if waiter else ""
        flash(f"Unlocked {held.project} in {held.repo} (held by #{held.pull}).{handed}", "ok")
    return redirect(safe_next(form.get("next")), 303)
