"""Starting a command: record it, mark the commit status pending, and queue one job per project."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.adapters.github import PullInfo
from bot.lifecycle.decision import PullState
from bot.models import Outcome, Project, ProjectResult
from bot.lifecycle import ordering
from bot.state.records import Command, project_from_dict, project_to_dict
from bot.render.comments import pending_status
from bot.lifecycle.checks import final_status_on

if TYPE_CHECKING:
    from bot.services import WorkerServices

log = logging.getLogger(__name__)

STATUS_CONTEXT = {"plan": "tfbot/plan", "apply": "tfbot/apply", "merge": "tfbot/apply", "handover": "tfbot/apply"}


def base_applies(svc: WorkerServices, repo: str, pull: PullInfo) -> bool:
    """Whether the PR's base branch is one tfbot applies: the default branch, or one of the repo's apply_branches."""
    repo_cfg = svc.config.repo_config(repo)
    if repo_cfg is None:
        raise ValueError(f"{repo} is not in config.repos: tfbot runs nothing there")
    return repo_cfg.applies_to(pull.base_ref, pull.default_branch or pull.base_ref)


def pull_state(pull: PullInfo) -> PullState:
    """The PR's state as the decision table knows it."""
    if pull.merged:
        return "merged"
    return "open" if pull.state == "open" else "closed"


def pull_info_dict(pull: PullInfo) -> dict[str, Any]:
    """The PR facts a runner needs, stored with the command so runs need not ask GitHub again."""
    return {
        "clone_url": pull.clone_url, "title": pull.title, "html_url": pull.html_url, "author": pull.author,
        "base_sha": pull.base_sha, "base_ref": pull.base_ref, "head_ref": pull.head_ref, "merged": pull.merged,
        "merge_commit_sha": pull.merge_commit_sha, "state": pull.state, "default_branch": pull.default_branch,
        # GraphQL node ids: the report writes its comment and check runs in one GraphQL request with them.
        "node_id": pull.node_id, "repo_node_id": pull.repo_node_id,
    }


def start_command(
    svc: WorkerServices,
    kind: str,
    repo: str,
    pull: PullInfo,
    installation: int,
    user: str,
    projects: list[Project],
    *,
    head_sha: str | None = None,
    note: str = "",
    prefilled: list[ProjectResult] = (),  # type: ignore[assignment]
    extra_info: dict[str, Any] | None = None,
    parallel: bool = True,
) -> Command:
    """Queue `kind` (plan, apply, merge) for each project; results already known (refusals) are recorded at once.

    `parallel` false (the repository's `parallel_plan`/`parallel_apply`): one project at a time, in order.
    """
    sha = head_sha or pull.head_sha
    applies = base_applies(svc, repo, pull)
    info = {**pull_info_dict(pull), "applies": applies, **(extra_info or {})}
    every = [*projects, *(r.project for r in prefilled)]  # a refused project still holds back what depends on it
    in_order = kind != "plan" and ordering.ordered(every)
    one_at_a_time = not parallel and len(every) > 1
    if in_order or one_at_a_time:
        # The command keeps what waits for what; advance_command starts each project when it may.
        waits = ordering.waits(every) if kind != "plan" else {p.id: frozenset[str]() for p in every}
        info["order"] = {pid: sorted(before) for pid, before in waits.items()}
        info["projects"] = {p.id: project_to_dict(p) for p in every}
    if one_at_a_time:
        info["after"] = {pid: sorted(before) for pid, before in ordering.one_at_a_time(every).items()}
        key = "parallel_plan" if kind == "plan" else "parallel_apply"
        note = f"{note} {'Planned' if kind == 'plan' else 'Applied'} one at a time (`{key}: false`).".strip()
    if in_order:
        note = f"{note} {ordering.describe(every)}".strip()
    cmd = svc.records.new_command(kind, repo, pull.number, sha, installation, user,
                                  total=len(projects) + len(prefilled), note=note, info=info)
    log.info("%s %s#%d at %s: %d project(s) queued (%s), by %s", kind, repo, pull.number, sha[:8], len(projects),
             ", ".join(p.name for p in projects) or "none", user)
    complete = False
    for result in prefilled:
        complete = svc.records.add_result(cmd.id, result) or complete
    if complete:
        svc.jobs.report_command(cmd.id)
    if "order" in cmd.info:
        advance_command(svc, cmd)  # the projects that wait for nothing; each result starts the next
    else:
        for project in projects:
            svc.jobs.run_project(cmd, project)
    # Only now GitHub: the jobs are queued whatever it answers, so a failure here cannot lose them.
    # Check runs: each run makes its own when it starts. The pending status only where it says something.
    if projects and svc.config.github.statuses and pending_needed(
            svc.config.github.check_runs, pull.state == "open" and not pull.merged,
            final_status_on(svc, repo, pull.number, STATUS_CONTEXT[kind]) == sha):
        _set_pending(svc, cmd, kind, repo, sha, installation, len(projects))
    return cmd


def pending_needed(check_runs: bool, pr_open: bool, final_on_head: bool) -> bool:
    """Pure: whether a command needs a pending commit status before the final one its report writes.

    Always without check runs: the status is then all a commit shows of a run. With them, the check run shows
    `in_progress`, and a commit with no status of the context is one branch protection waits on as it waits on
    `pending`; so only an open PR's commit that already carries a final status of the context (`final_on_head`: a
    `plan` comment on a planned head, a second apply) needs one, lest the old result stand while the new run goes.
    A merged PR's merge is past what branch protection guards.
    """
    return not check_runs or (pr_open and final_on_head)


def _set_pending(svc: WorkerServices, cmd: Command, kind: str, repo: str, sha: str, installation: int,
                 count: int) -> None:
    """Best effort: the final status comes with the report, which retries while GitHub is down."""
    from bot.adapters.github import GitHubError
    state, description = pending_status(count, "plan" if kind == "plan" else "apply")
    try:
        svc.github.repo(installation, repo).set_status(sha, STATUS_CONTEXT[kind], state, description,
                                                       svc.status_url(cmd))
    except GitHubError as exc:
        log.warning("pending status of %s %s at %s not set: %s", kind, repo, sha[:8], exc)
        return
    # A fast run may have been reported before this pending status landed: report again so the final one wins.
    if len(svc.records.results(cmd.id)) >= cmd.total:
        svc.jobs.report_command(cmd.id)


def advance_command(svc: WorkerServices, cmd: Command) -> None:
    """For a command that applies in order: queue every project whose waits have applied, and report as not applied
    every project a wait of which did not (then their own dependents, in turn). Safe to call from every job that
    adds a result, at once: each project is claimed once (`Records.mark_started`)."""
    order = {pid: frozenset(before) for pid, before in (cmd.info.get("order") or {}).items()}
    if not order:
        return
    after = {pid: frozenset(before) for pid, before in (cmd.info.get("after") or {}).items()}
    projects = {pid: project_from_dict(data) for pid, data in cmd.info["projects"].items()}
    while True:
        outcomes = {r.project.id: r.outcome for r in svc.records.results(cmd.id)}
        ready, blocked = ordering.next_steps(order, svc.records.started(cmd.id), outcomes, after)
        for pid in ready:
            if svc.records.mark_started(cmd.id, pid):
                svc.jobs.run_project(cmd, projects[pid])
        if not blocked:
            return
        for pid, dependency in blocked.items():
            if svc.records.mark_started(cmd.id, pid) and svc.records.add_result(
                    cmd.id, not_applied(cmd, projects[pid], projects[dependency], outcomes[dependency])):
                svc.jobs.report_command(cmd.id)


def not_applied(cmd: Command, project: Project, dependency: Project, outcome: Outcome) -> ProjectResult:
    """The result of a project left out because `dependency` (of the same command) did not apply."""
    return ProjectResult(project, Outcome.NOT_APPLIED, head_sha=cmd.head_sha,
                         summary=f"not applied: {dependency.name} {outcome.value}", message=(
        f"Not applied: `{project.name}` depends on `{dependency.name}`, whose result was \"{outcome.value}\". "
        f"Nothing of `{project.name}` was run; its lock is as it was. Comment `apply` once `{dependency.name}` "
        "is applied."))
