"""`GET /runs/<id>`: one plan or apply run with its full Terraform output (for those allowed to read it)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, abort, current_app, render_template, request

from bot.web import present
from bot.web.auth import current_admin

if TYPE_CHECKING:
    from bot.services import WebServices

bp = Blueprint("runs", __name__)


def may_read_output(svc: WebServices) -> bool:
    """Terraform output can hold values people should not see: signed-in admins only, unless server.public_logs."""
    return bool(svc.config.server.public_logs or current_admin())


def load_run(svc: WebServices, run_id: str) -> tuple[dict[str, Any], str]:
    """(meta, output) of a run, or a 404 when the id is malformed, unknown or expired."""
    if not present.RUN_ID_RE.match(run_id):
        abort(404, "No such run.")
    found = svc.records.run(run_id)
    if found is None:
        abort(404, f"No run {run_id}: the id is wrong, or its log expired (run logs are kept 30 days).")
    return found


def run_json(svc: WebServices, meta: dict[str, Any], output: str, show_output: bool) -> dict[str, Any]:
    """One run as `/api/runs/<id>` shows it."""
    api_url = svc.config.github.api_url
    started = meta.get("started_at")
    return {
        "id": meta.get("id"),
        "kind": meta.get("kind"),
        "repo": meta.get("repo"),
        "pull_number": meta.get("pull"),
        "pull_kind": meta.get("pull_kind", "pull") if meta.get("pull") else None,
        "pull_url": present.pull_url(api_url, meta["repo"], meta["pull"], str(meta.get("pull_kind", "pull")))
        if meta.get("repo") and meta.get("pull") else None,  # a drift check is of no PR
        "project": meta.get("project"),
        "dir": meta.get("dir"),
        "workspace": meta.get("workspace"),
        "sha": meta.get("sha"),
        "user": meta.get("user"),
        "started_at": present.iso_utc(started) if isinstance(started, (int, float)) else None,
        "duration_seconds": meta.get("duration"),
        "ok": meta.get("ok"),
        "summary": meta.get("summary", ""),
        "output": present.output_text(output) if show_output else None,
        "output_hidden": not show_output,
    }


@bp.get("/runs/<run_id>")
def run_page(run_id: str):  # type: ignore[no-untyped-def]
    svc = current_app.extensions["tfbot"]
    meta, output = load_run(svc, run_id)
    show = may_read_output(svc)
    api_url = svc.config.github.api_url
    started = meta.get("started_at")
    return render_template(
        "web/run.html",
        run=meta,
        kind={"apply": "Apply", "drift": "Drift check"}.get(str(meta.get("kind")), "Plan"),
        pull_url=present.pull_url(api_url, meta.get("repo", ""), meta.get("pull", 0),
                                  str(meta.get("pull_kind", "pull"))),
        pull_label="Drift issue" if meta.get("pull_kind") == "drift" else "Pull request",
        commit_url=present.commit_url(api_url, meta.get("repo", ""), meta.get("sha", "")),
        started=present.human_utc(started) if isinstance(started, (int, float)) else "unknown",
        started_iso=present.iso_utc(started) if isinstance(started, (int, float)) else "",
        duration=present.duration_text(meta.get("duration")),
        lines=present.output_lines(output) if show else None,
        show_output=show,
        admin=current_admin(),
        here=request.full_path.rstrip("?"),
    )
