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
    router.add("GET", base + "/check-runs/{run_id}/annotations", list_annotations)
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
# GitHub's documented limits (https://docs.github.com/rest/checks/runs): output.summary and output.text at most
# 65535 characters; at most 50 annotations per request, each with path, start_line, end_line, annotation_level
# (notice, warning, failure) and message (at most 64 KB), title at most 255 characters, columns only on one line;
# at most 3 actions, each with label (<= 20), description (<= 40) and identifier (<= 20).

MAX_OUTPUT = 65535
MAX_ANNOTATIONS = 50
MAX_ANNOTATION_BYTES = 64 * 1024
MAX_ANNOTATION_TITLE = 255
ANNOTATION_LEVELS = ("notice", "warning", "failure")
MAX_ACTIONS = 3
ACTION_LIMITS = {"label": 20, "description": 40, "identifier": 20}


def _parse_time(value: Any, field_name: str) -> Optional[float]:
    if value is None:
        return None
    try:
        return float(calendar.timegm(time.strptime(str(value).replace("Z", ""), "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        raise validation_failed("CheckRun", field_name, "invalid", doc=_CHECK_DOCS) from None


def _invalid(field_name: str, message: str) -> Exception:
    return validation_failed("CheckRun", field_name, "custom", message, doc=_CHECK_DOCS)


def _checked_output(output: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The output's title, summary and text, and its annotations, or a 422 as GitHub answers a bad one."""
    if not isinstance(output, dict):
        raise _invalid("output", "output must be an object")
    for required in ("title", "summary"):
        if not isinstance(output.get(required), str):
            raise validation_failed("CheckRun", f"output.{required}", "missing_field", doc=_CHECK_DOCS)
    for name in ("summary", "text"):
        value = output.get(name)
        if value is not None and not isinstance(value, str):
            raise _invalid(f"output.{name}", f"output.{name} must be a string")
        if isinstance(value, str) and len(value) > MAX_OUTPUT:
            raise _invalid(f"output.{name}", f"output.{name} is too long (maximum is {MAX_OUTPUT} characters)")
    annotations = output.get("annotations") or []
    if not isinstance(annotations, list):
        raise _invalid("output.annotations", "output.annotations must be an array")
    if len(annotations) > MAX_ANNOTATIONS:
        raise _invalid("output.annotations", f"at most {MAX_ANNOTATIONS} annotations per request")
    return {k: output[k] for k in ("title", "summary", "text") if k in output}, [_checked_annotation(a)
                                                                                 for a in annotations]


def _checked_annotation(annotation: Any) -> dict[str, Any]:
    if not isinstance(annotation, dict):
        raise _invalid("output.annotations", "an annotation must be an object")
    for name, kind in (("path", str), ("start_line", int), ("end_line", int), ("annotation_level", str),
                       ("message", str)):
        if not isinstance(annotation.get(name), kind) or isinstance(annotation.get(name), bool):
            raise validation_failed("CheckRun", f"output.annotations.{name}", "missing_field", doc=_CHECK_DOCS)
    if annotation["annotation_level"] not in ANNOTATION_LEVELS:
        raise _invalid("output.annotations.annotation_level", "annotation_level is not included in the list")
    if annotation["start_line"] < 1 or annotation["end_line"] < annotation["start_line"]:
        raise _invalid("output.annotations.start_line", "start_line must be at least 1 and at most end_line")
    if annotation["start_line"] != annotation["end_line"] and ("start_column" in annotation
                                                               or "end_column" in annotation):
        raise _invalid("output.annotations.start_column", "columns are allowed only when start_line equals end_line")
    for name in ("message", "raw_details"):
        if len(str(annotation.get(name) or "").encode()) > MAX_ANNOTATION_BYTES:
            raise _invalid(f"output.annotations.{name}", f"{name} is too long (maximum is 64 KB)")
    if len(str(annotation.get("title") or "")) > MAX_ANNOTATION_TITLE:
        raise _invalid("output.annotations.title", f"title is too long (maximum is {MAX_ANNOTATION_TITLE} characters)")
    return dict(annotation)


def _checked_actions(actions: Any) -> list[dict[str, Any]]:
    if not isinstance(actions, list):
        raise _invalid("actions", "actions must be an array")
    if len(actions) > MAX_ACTIONS:
        raise _invalid("actions", f"at most {MAX_ACTIONS} actions")
    for action in actions:
        for name, limit in ACTION_LIMITS.items():
            value = action.get(name) if isinstance(action, dict) else None
            if not isinstance(value, str) or not value:
                raise validation_failed("CheckRun", f"actions.{name}", "missing_field", doc=_CHECK_DOCS)
            if len(value) > limit:
                raise _invalid(f"actions.{name}", f"{name} is too long (maximum is {limit} characters)")
    return [dict(a) for a in actions]


def _apply_check_fields(run: CheckRun, body: dict[str, Any]) -> None:
    """Validate the whole request first, then change the run: a 422 leaves it as it was."""
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
    for name in ("details_url", "external_id", "name"):
        if name in body and not isinstance(body[name], str):
            raise _invalid(name, f"{name} must be a string")
    output, annotations = _checked_output(body["output"]) if "output" in body else (None, [])
    actions = _checked_actions(body["actions"]) if "actions" in body else None
    started = _parse_time(body["started_at"], "started_at") if "started_at" in body else run.started_at
    completed = _parse_time(body["completed_at"], "completed_at") if "completed_at" in body else run.completed_at
    run.status, run.conclusion = status, conclusion
    for name in ("details_url", "external_id", "name"):
        if name in body:
            setattr(run, name, body[name])
    if output is not None:
        run.output = output
        run.annotations.extend(annotations)  # GitHub appends every request's annotations to the run's
    if actions is not None:
        run.actions = actions
    run.started_at, run.completed_at = started, completed
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
    run = CheckRun(
        id=0, repo=found.full_name, name=body["name"], head_sha=sha,
        status="queued", conclusion=None, details_url=None, external_id=None, output={},
        started_at=time.time(), completed_at=None, suite_id=ctx.state.check_suites.get(suite_key, 0),
    )
    _apply_check_fields(run, {k: v for k, v in body.items() if k != "head_sha"})
    if suite_key not in ctx.state.check_suites:
        ctx.state.check_suites[suite_key] = ctx.state.next_id("check_suite")
    run.id, run.suite_id = ctx.state.next_id("check_run"), ctx.state.check_suites[suite_key]
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


def list_annotations(ctx: Ctx, req: Request, owner: str, repo: str, run_id: str) -> Response:
    found = visible_repo(ctx, req, owner, repo)
    run = _run_of(ctx, found, run_id)
    items = [ctx.pay.annotation(run, a) for a in run.annotations]
    page, headers = paginate(items, req.query, f"{ctx.pay.api}/repositories/{found.id}/check-runs/{run.id}/annotations")
    return Response(200, page, headers)


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
