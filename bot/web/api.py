"""`GET /api/locks` and `GET /api/runs/<id>`: the page's data as JSON, for scripts and dashboards."""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify

from bot.web import present
from bot.web.locks import filters, waiting_counts
from bot.web.runs import load_run, may_read_output, run_json

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/locks")
def locks():  # type: ignore[no-untyped-def]
    """Every lock, oldest first; `?repo=` and `?q=` filter like the page."""
    svc = current_app.extensions["tfbot"]
    repo, text = filters()
    locks = present.filtered(svc.locks.list(), repo, text)
    waiting = waiting_counts(svc, locks)
    now = time.time()
    api_url, base = svc.config.github.api_url, svc.config.server.public_url
    return jsonify([present.lock_json(lk, now, api_url, base, waiting.get((lk.repo, lk.dir, lk.workspace), 0))
                    for lk in locks])


@bp.get("/runs/<run_id>")
def run(run_id: str):  # type: ignore[no-untyped-def]
    svc = current_app.extensions["tfbot"]
    meta, output = load_run(svc, run_id)
    return jsonify(run_json(svc, meta, output, may_read_output(svc)))
