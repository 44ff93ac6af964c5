"""`GET /drift` and `GET /api/drift`: every project's last drift check, as a page and as JSON. Read-only: the
checks are written by the workers that run them (bot/state/drift_checks.py)."""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify, render_template, request

from bot.state.drift_checks import DriftChecks
from bot.web import drift_view
from bot.web.auth import current_admin

bp = Blueprint("drift", __name__)


@bp.get("/drift")
def page():  # type: ignore[no-untyped-def]
    svc = current_app.extensions["tfbot"]
    checks = DriftChecks(svc.redis).all()
    now = time.time()
    base = svc.config.server.public_url
    response = current_app.make_response(render_template(
        "web/drift.html",
        rows=[drift_view.drift_row(c, now, svc.config.github.api_url, base) for c in checks],
        counts=drift_view.state_counts(checks),
        total=len(checks),
        scheduled=[r.name for r in svc.config.repos if r.drift.enabled],
        admin=current_admin(),
        here=request.full_path.rstrip("?"),
    ))
    response.add_etag()
    return response.make_conditional(request)


@bp.get("/api/drift")
def api():  # type: ignore[no-untyped-def]
    """Every project's last check, by repository then project: `projects` (see drift_view.drift_json), `counts`
    by state, `total`."""
    svc = current_app.extensions["tfbot"]
    return jsonify(drift_view.drift_listing(DriftChecks(svc.redis).all(), time.time(),
                                            svc.config.server.public_url))

