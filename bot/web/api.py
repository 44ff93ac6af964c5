"""`GET /api/locks` and `GET /api/runs/<id>`: the page's data as JSON, for scripts and dashboards."""
from __future__ import annotations

import time

from flask import Blueprint, abort, current_app, jsonify, request, url_for

from bot.models import LockState
from bot.web import present
from bot.web.locks import LISTING, filters
from bot.web.runs import load_run, may_read_output, run_json

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/locks")
def locks():  # type: ignore[no-untyped-def]
    """Locks oldest first, a page at a time: `?repo=` and `?q=` filter like the page, `?state=` (repeatable) keeps
    those states; `?limit=` locks per page (present.API_LIMIT, at most API_MAX_LIMIT), `?cursor=` from the `next`
    link of the page before. A bad parameter is a 400 that names it."""
    svc = current_app.extensions["tfbot"]
    repo, text = filters()
    cursor = request.args.get("cursor", "")
    try:
        states = present.parse_states(request.args.getlist("state"))
        limit = present.parse_limit(request.args.get("limit"))
        after = present.decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        abort(400, str(exc))
    snapshot = svc.lock_cache.snapshot()
    found = snapshot.derived(LISTING, present.listing).select(repo, text, states)
    shown, last = present.page_after(found, after, limit)
    base = svc.config.server.public_url
    next_url = None if last is None else present.site_url(base, url_for(
        "api.locks", repo=repo or None, q=text or None, state=[s.value for s in LockState if s in states] or None,
        limit=limit, cursor=present.encode_cursor(last)))
    return jsonify(present.locks_json(shown, len(found), next_url, time.time(), svc.config.github.api_url, base,
                                      snapshot.waiting))


@bp.get("/runs/<run_id>")
def run(run_id: str):  # type: ignore[no-untyped-def]
    svc = current_app.extensions["tfbot"]
    meta, output = load_run(svc, run_id)
    return jsonify(run_json(svc, meta, output, may_read_output(svc)))
