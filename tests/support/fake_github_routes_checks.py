"""Routes of the fake GitHub for commit statuses and check runs."""
from __future__ import annotations

import calendar
import time
from typing import Any, Optional
from urllib.parse import quote

from tests.support.fake_github_access import commit_or_422, int_param, visible_repo
from tests.support.fake_github_http import Ctx, Request, Response, Router, not_found, paginate, validation_failed
from tests.support.fake_github_state import CheckRun, Repo, Status

STATUS_STATES = ("error", "failure", "pending", "success")
MAX_DESCRIPTION = 140
CHECK_STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
CHECK_CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale",
                     "timed_out")
_STATUS_DOCS = "https://docs.github.com/rest/commits/statuses#create-a-commit-status"
_CHECK_DOCS = "https://docs.github.com/rest/checks/runs#create-a-check-run"


def register(router: Router) -> None:
    """Add the status and check run routes to `router`."""
    base = "/repos/{owner}/{repo}"
    router.add("POST", base + "/statuses/{sha}", create_status, needs=("statuses",))
    router.add("GET", base + "/statuses/{ref}", list_statuses)
    router.add("GET", base + "/commits/{ref}/statuses", list_statuses)
    router.add("GET", base + "/commits/{ref}/status", combined_status)
    router.add("POST", base + "/check-runs", create_check_run, needs=("checks",))
    router.add("GET", base + "/check-runs/{run_id}", get_check_run)
    router.add("PATCH", base + "/check-runs/{run_id}", update_check_run, needs=("checks",))
    router.add("GET", base + "/commits/{ref}/check-runs", list_check_runs)


# ---- statuses ----------------------------------------------------------------------

def statuses_newest_first(ctx: Ctx, repo: Repo, sha: str) -> list[Status]:
    """Every status of `sha` in `repo`, newest first, as GitHub lists them."""
    found = [s for s in ctx.state.statuses.values() if s.repo == repo.full_name and s.sha == sha]
    return sorted(found, key=lambda s: (s.created_at, s.id), reverse=True)


def create_status(ctx: Ctx, req: Request, owner: str, repo: str, sha: str) -> Response:
    found = visible_repo(ctx, req, owner, repo, write=True)
    body: dict[str, Any] = req.body if isinstance(req.body, dict) else {}
    state = body.get("state")
    if state is None:
        raise validation_failed("Status", "state", "missing_field", doc=_STATUS_DOCS)
    if state not in STATUS_STATES:
        raise validation_failed("Status", "state", "custom", "state is not included in the list",
                                doc=_STATUS_DOCS)
    description = body.get("description")
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise validation_failed("Status", "description", "custom",
                                f"description is too long (maximum is {MAX_DESCRIPTION} characters)",
                                doc=_STATUS_DOCS)
    full_sha = commit_or_422(ctx.state, found, sha)
    status = Status(
        id=ctx.state.next_id("status"), repo=found.full_name, sha=full_sha, state=state,
        context=body.get("context") or "default", description=description, target_url=body.get("target_url"),
        creator=ctx.state.bot_login, created_at=time.time(),
    )
    ctx.state.statuses[status.id] = status
    return Response(201, ctx.pay.status(status))


def list_statuses(ctx: Ctx, req: Request, owner: str, repo: str, ref: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    sha = commit_or_422(ctx.state, found, ref)
    items = [ctx.pay.status(s) for s in statuses_newest_first(ctx, found, sha)]
    url = f"{ctx.pay.api}/repositories/{found.id}/commits/{quote(ref, safe='')}/statuses"
    page, headers = paginate(items, req.query, url)
    return Response(200, page, headers)


def combined_status(ctx: Ctx, req: Request, owner: str, repo: str, ref: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    sha = commit_or_422(ctx.state, found, ref)
    latest: dict[str, Status] = {}
    for status in statuses_newest_first(ctx, found, sha):
        latest.setdefault(status.context, status)
    states = {s.state for s in latest.values()}
    if states & {"error", "failure"}:
        combined = "failure"
    elif not states or "pending" in states:
        combined = "pending"
    else:
        combined = "success"
    repo_url = ctx.pay.repo_url(found)
    ordered = sorted(latest.values(), key=lambda s: s.id)
    page, headers = paginate([ctx.pay.status(s) for s in ordered], req.query,
                             f"{ctx.pay.api}/repositories/{found.id}/commits/{quote(ref, safe='')}/status")
    return Response(200, {
        "state": combined,
        "statuses": page,
        "sha": sha,
        "total_count": len(latest),
        "repository": ctx.pay.repo(found, full=False),
        "commit_url": f"{repo_url}/commits/{sha}",
        "url": f"{repo_url}/commits/{sha}/status",
    }, headers)


# ---- check runs --------------------------------------------------------------------

def _parse_time(value: Any, field_name: str) -> Optional[float]:
    if value is None:
        return None
    try:
        return float(calendar.timegm(time.strptime(str(value).replace("Z", ""), "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        raise validation_failed("CheckRun", field_name, "invalid", doc=_CHECK_DOCS) from None


def _apply_check_fields(run: CheckRun, body: dict[str, Any]) -> None:
    status = body.get("status", run.status)
    conclusion = body.get("conclusion", run.conclusion)
    if status not in CHECK_STATUSES:
        raise validation_failed("CheckRun", "status", "invalid", doc=_CHECK_DOCS)
    if conclusion is not None and conclusion not in CHECK_CONCLUSIONS:
        raise validation_failed("CheckRun", "conclusion", "invalid", doc=_CHECK_DOCS)
    if "conclusion" in body and conclusion is not None:
        status = "completed"  # GitHub completes a run that is given a conclusion
    if status == "completed" and conclusion is None:
        raise validation_failed("CheckRun", "conclusion", "missing_field",
                                "Conclusion is required when status is completed", doc=_CHECK_DOCS)
    run.status, run.conclusion = status, conclusion
    for name in ("details_url", "external_id", "name"):
        if name in body:
            setattr(run, name, body[name])
    if isinstance(body.get("output"), dict):
        run.output = {k: body["output"].get(k) for k in ("title", "summary", "text") if k in body["output"]}
    if "started_at" in body:
        run.started_at = _parse_time(body["started_at"], "started_at")
    if "completed_at" in body:
        run.completed_at = _parse_time(body["completed_at"], "completed_at")
    if run.status == "completed" and run.completed_at is None:
        run.completed_at = time.time()


def create_check_run(ctx: Ctx, req: Request, owner: str, repo: str) -> Response:
    found = visible_repo(ctx, req, owner, repo, write=True)
    body: dict[str, Any] = req.body if isinstance(req.body, dict) else {}
    for required in ("name", "head_sha"):
        if not body.get(required):
            raise validation_failed("CheckRun", required, "missing_field", doc=_CHECK_DOCS)
    sha = commit_or_422(ctx.state, found, body["head_sha"])
    suite_key = (found.full_name, sha)
    if suite_key not in ctx.state.check_suites:
        ctx.state.check_suites[suite_key] = ctx.state.next_id("check_suite")
    run = CheckRun(
        id=ctx.state.next_id("check_run"), repo=found.full_name, name=body["name"], head_sha=sha,
        status="queued", conclusion=None, details_url=None, external_id=None, output={},
        started_at=time.time(), completed_at=None, suite_id=ctx.state.check_suites[suite_key],
    )
    _apply_check_fields(run, {k: v for k, v in body.items() if k != "head_sha"})
    ctx.state.check_runs[run.id] = run
    return Response(201, ctx.pay.check_run(run))


def _run_of(ctx: Ctx, repo: Repo, run_id: str) -> CheckRun:
    run = ctx.state.check_runs.get(int_param(run_id))
    if run is None or run.repo != repo.full_name:
        raise not_found()
    return run


def get_check_run(ctx: Ctx, req: Request, owner: str, repo: str, run_id: str) -> Response:
    return Response(200, ctx.pay.check_run(_run_of(ctx, visible_repo(ctx, req, owner, repo), run_id)))


def update_check_run(ctx: Ctx, req: Request, owner: str, repo: str, run_id: str) -> Response:
    run = _run_of(ctx, visible_repo(ctx, req, owner, repo, write=True), run_id)
    body: dict[str, Any] = req.body if isinstance(req.body, dict) else {}
    _apply_check_fields(run, body)
    return Response(200, ctx.pay.check_run(run))


def list_check_runs(ctx: Ctx, req: Request, owner: str, repo: str, ref: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    sha = commit_or_422(ctx.state, found, ref)
    runs = sorted((r for r in ctx.state.check_runs.values() if r.repo == found.full_name and r.head_sha == sha),
                  key=lambda r: r.id, reverse=True)
    if req.query.get("filter", "latest") == "latest":
        seen: set[str] = set()
        runs = [r for r in runs if not (r.name in seen or seen.add(r.name))]
    if "check_name" in req.query:
        runs = [r for r in runs if r.name == req.query["check_name"]]
    if "status" in req.query:
        runs = [r for r in runs if r.status == req.query["status"]]
    items = [ctx.pay.check_run(r) for r in runs]
    url = f"{ctx.pay.api}/repositories/{found.id}/commits/{quote(ref, safe='')}/check-runs"
    page, headers = paginate(items, req.query, url)
    return Response(200, {"total_count": len(items), "check_runs": page}, headers)
