"""`apply` commented on a drift issue: apply the default branch's plan of the issue's project, if it is the plan the
issue shows (the `apply_drift` job of bot/jobs.py; the comment handler is bot/lifecycle/handlers/drift_issues.py).

The flow, every step decided by bot/drift/decision.py over values read at that moment:
1. the issue is read again from GitHub (its hidden marker names the project; bot/drift/marker.py), the author's
   permission is asked of GitHub now, the project's last check read (bot/state/drift_checks.py);
2. the project's workspace lock is taken like a PR takes it, with the issue's number as its holder (`kind`
   "drift", titled "Drift: <repo> <project>"), never by joining its line: a PR holding it is named and nothing runs;
3. under the project's run guard, the default branch's current head is planned with the runner's own plan
   pipeline (same workflow, sandbox, plan credentials, plan file store, run log: bot/lifecycle/runner.py
   `run_plan`); the plan is applied (`apply_saved`: apply credentials, the lock `applying`) only if its
   `changes_digest` equals the last check's digest, the plan the issue shows. Otherwise nothing is applied and
   the project is checked again (`check_drift`), so the issue shows what `apply` would now do;
4. the lock is released whatever happened and handed to the next PR in line (bot/lifecycle/handover.py).

A failed (or interrupted) apply releases the lock too, unlike a PR's: a PR's failed apply left the infrastructure
holding part of a change the default branch lacks, but a drift apply moves it toward the default branch, so what
is left is drift again, no worse than before the apply. The issue is told, the audit says `failed`, and the
project is checked again so the issue shows the drift that remains. Only a worker killed mid-apply (no `finally`
runs) leaves the lock held: the worker's failure callback queues `report_interrupted` below, which names the lock
on the issue; an admin releases it from the lock page or with `tfbot unlock`, with a reason.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bot.drift.decision import DriftAction, DriftApplyFacts, DriftDecision, Holder, decide
from bot.drift.marker import subject_of
from bot.lifecycle.default_branch import projects_at
from bot.lifecycle.handover import release_and_hand_over
from bot.lifecycle.runner import (GUARD_WAIT, LockLost, PlanRefused, Refused, apply_saved, changes_digest,
                                  new_run_id, run_plan)
from bot.lifecycle.targets import Target
from bot.models import LockInfo, LockState, Project
from bot.projects.detection import project_at
from bot.render.comments import code_span
from bot.state import audit
from bot.state.drift_checks import DriftChecks
from bot.state.locks import GuardTimeout
from bot.state.records import Command

if TYPE_CHECKING:
    from bot.adapters.github import RepoAPI
    from bot.config.models import RepoConfig
    from bot.lifecycle.steps import PlanOutcome
    from bot.state.locks import RunGuard
    from bot.services import WorkerServices

log = logging.getLogger(__name__)

# Why the project is checked again, as `check_drift` records it.
RECHECK_APPLIED = "applied from the drift issue"
RECHECK_CHANGED = "the drift changed since the issue was written"
RECHECK_FAILED = "an apply from the drift issue failed"


@dataclass(frozen=True)
class DriftApplyRequest:
    """One `apply` comment on an issue: where, by whom, and the comment's URL (linked from the re-check)."""

    repo: str
    installation: int
    issue: int
    author: str
    comment_url: str
    shown_digest: str = ""  # the plan digest the issue's body carried when the comment was made (the webhook's copy)


class DriftBusy(Exception):
    """Another run holds the project's run guard: nothing ran, the lock is released again; try later."""


def apply_from_issue(svc: WorkerServices, req: DriftApplyRequest) -> str:
    """Carry out one `apply` on a drift issue; returns what happened: `ignored` (not a drift issue), `refused`,
    `plan failed`, `changed` (nothing applied, re-checked), `applied`, `apply failed` or `error`. Raises DriftBusy
    when the project is busy with another run (the job tries again later)."""
    gh = svc.github.repo(req.installation, req.repo)
    issue = gh.issue(req.issue)  # read again: the payload's body may be older; None for a PR or a deleted issue
    subject = subject_of(issue.body) if issue is not None else None
    if issue is None or subject is None or subject.repo != req.repo:
        log.info("%s#%d: `apply` on an issue that is not a drift issue of this repository: ignored",
                 req.repo, req.issue)
        return "ignored"
    settings = svc.config.repo_config(req.repo)
    project = project_at(req.repo, settings, subject.dir, subject.workspace, subject.name)
    check = DriftChecks(svc.redis).last(req.repo, subject.dir, subject.workspace)
    facts = DriftApplyFacts(
        repo=req.repo, project=project.name, issue=req.issue, author=req.author,
        permission=gh.permission(req.author), issue_open=issue.state == "open",
        check_state=check.state.value if check else "", check_digest=check.digest if check else "",
        holder=holder_of(svc.locks.get(project)), drift_enabled=bool(settings and settings.drift.enabled),
        issue_by_tfbot=issue.by_app(svc.config.github.app_id, svc.bot_login),
        check_issue=check.issue if check else 0, shown_digest=req.shown_digest)
    first = decide(facts)
    if first.action is not DriftAction.PLAN:
        return _refused(svc, gh, req, project, first)
    branch, clone_url = gh.default_branch()
    ref = f"+refs/heads/{branch}:refs/tfbot/heads/{branch}"
    head = svc.checkouts.fetch(req.repo, gh.authenticated_clone_url(clone_url), [ref])[ref]
    project = as_the_branch_has_it(svc, settings, head, project)
    cmd = Command(id=f"drift-{uuid.uuid4().hex[:12]}", kind="drift-apply", repo=req.repo, pull=req.issue,
                  head_sha=head, installation=req.installation, user=req.author, total=1,
                  info={"clone_url": clone_url, "base_ref": branch, "author": req.author,
                        "title": issue.title, "html_url": issue.html_url})
    acquired = svc.locks.try_acquire(project, req.issue, req.author, pull_title=f"Drift: {req.repo} {project.name}",
                                     pull_url=issue.html_url, command_id=cmd.id, kind="drift", wait=False)
    if not acquired.acquired:  # a PR took it since the first read
        return _refused(svc, gh, req, project, decide(replace(facts, holder=holder_of(acquired.lock))))
    if acquired.already_held:  # an earlier `apply` of this issue holds it: its lock is not ours to release
        if svc.locks.guard_holder(project) is not None:
            _say(gh, req, f"@{req.author}: an `apply` from this issue is already running for `{project.name}`; "
                          "its result is posted here when it ends.")
        else:  # no run holds the project: the earlier apply died without releasing (its report said so)
            _say(gh, req, f"@{req.author}: an earlier `apply` from this issue stopped without finishing and left the "
                          f"lock of `{project.name}` held ({acquired.lock.state.value}). Look at its run log, then "
                          "release the lock on tfbot's lock page or with `tfbot unlock` (with a reason), and comment "
                          "`apply` again.")
        return "refused"
    token = acquired.lock.token
    outcome = "error"
    rechecks: list[str] = []  # why to check the project again: queued once the lock is released, or the check
    # would find the project locked (by this apply) and skip it
    try:
        with svc.locks.run_guard(project, holder=cmd.id, wait=GUARD_WAIT) as guard:
            try:
                outcome = _plan_and_apply(svc, gh, req, cmd, project, facts, token, guard, rechecks)
            except Exception as exc:  # noqa: BLE001 - told on the issue and logged; the lock is released below
                log.exception("drift apply %s#%d %s failed inside tfbot", req.repo, req.issue, project.name)
                _audit(svc, req, project, head, "error", svc.mask(f"{type(exc).__name__}: {exc}"))
                _say(gh, req, f"@{req.author}: tfbot could not carry out the `apply` of `{project.name}` "
                              f"({type(exc).__name__}); this is a fault in tfbot or its surroundings. The lock is "
                              "released; comment `apply` to try again.")
    except GuardTimeout as exc:
        outcome = "busy"
        raise DriftBusy(str(exc)) from None
    finally:
        release_and_hand_over(svc, project, req.issue, token, reason=f"drift issue #{req.issue}: {outcome}")
    for reason in rechecks:
        svc.jobs.check_drift(project, reason=reason, link=req.comment_url)
    return outcome


def holder_of(lock: LockInfo | None) -> Holder | None:
    """Who holds a lock, as the decision reads it; None when it is free."""
    return None if lock is None else Holder(number=lock.pull, user=lock.user, kind=lock.kind)


def as_the_branch_has_it(svc: WorkerServices, settings: RepoConfig | None, sha: str, project: Project) -> Project:
    """`project` as the default branch's `tfbot.yaml` at `sha` makes it (its workflow, its Terraform version): what
    the drift check planned, so what the issue shows. The server's entry's project when the branch declares none
    at that dir and workspace (or has no `tfbot.yaml`, or one with problems: the check used the server's too)."""
    if settings is None:
        return project
    for found in projects_at(svc, project.repo, settings, sha):
        if (found.dir, found.workspace) == (project.dir, project.workspace):
            return found
    return project


def _plan_and_apply(svc: WorkerServices, gh: RepoAPI, req: DriftApplyRequest, cmd: Command, project: Project,
                    facts: DriftApplyFacts, token: int, guard: RunGuard, rechecks: list[str]) -> str:
    """Under the lock and the run guard: plan the default branch's head, compare, apply or re-check."""
    planned, plan_run = run_plan(svc, cmd, project, Target(cmd.head_sha, cmd.head_sha, ""), guard)
    at = f"`{cmd.info['base_ref']}` at {cmd.head_sha[:8]}"
    if not planned.ok:
        _audit(svc, req, project, cmd.head_sha, "plan failed", planned.summary, plan_run)
        _say(gh, req, f"@{req.author}: the plan of `{project.name}` on {at} failed: {_quoted(planned.summary)}. "
                      f"Nothing was applied and the lock is released.{_log(svc, plan_run)}")
        return "plan failed"
    if not svc.locks.set_state(project, req.issue, token, LockState.PLANNED, summary=planned.summary,
                               run_id=plan_run, command_id=cmd.id):
        raise LockLost()
    after = decide(replace(facts, holder=None, fresh_digest=changes_digest(planned.plan_json),
                           fresh_has_changes=bool(planned.has_changes)))
    if after.action is DriftAction.RECHECK:
        _audit(svc, req, project, cmd.head_sha, "changed", after.reason, plan_run)
        rechecks.append(RECHECK_CHANGED)
        _say(gh, req, f"@{req.author}: nothing was applied: {after.reason}. The drift changed since this issue was "
                      f"written, so tfbot checks `{project.name}` again now and this issue will show the new plan; "
                      f"review it, then comment `apply` again.{_log(svc, plan_run)}")
        return "changed"
    if after.action is not DriftAction.APPLY:
        return _refused(svc, gh, req, project, after)
    return _apply(svc, gh, req, cmd, project, token, guard, planned, plan_run, at, rechecks)


def _apply(svc: WorkerServices, gh: RepoAPI, req: DriftApplyRequest, cmd: Command, project: Project, token: int,
           guard: RunGuard, planned: PlanOutcome, plan_run: str, at: str, rechecks: list[str]) -> str:
    plan = svc.records.plan_of_run(project, req.issue, plan_run)
    if plan is None:
        raise RuntimeError(f"the plan record of run {plan_run} is missing")
    run_id = new_run_id()
    try:
        applied = apply_saved(svc, cmd, project, plan, token, run_id, guard)
    except (Refused, PlanRefused) as exc:
        _audit(svc, req, project, cmd.head_sha, "refused", str(exc), run_id)
        _say(gh, req, f"@{req.author}: nothing was applied to `{project.name}`: {exc}. The lock is released.")
        return "refused"
    except Exception as exc:  # the apply may have begun: say so, check again, and let the caller release
        _audit(svc, req, project, cmd.head_sha, "interrupted", svc.mask(f"{type(exc).__name__}: {exc}"), run_id)
        rechecks.append(RECHECK_FAILED)
        _say(gh, req, f"@{req.author}: the apply of `{project.name}` on {at} stopped ({type(exc).__name__}) after it "
                      "may have begun, so part of it may be applied. The lock is released and tfbot checks the "
                      "project again now: this issue will show what still differs.")
        return "apply failed"
    if not applied.ok:
        _audit(svc, req, project, cmd.head_sha, "failed", applied.summary, run_id)
        rechecks.append(RECHECK_FAILED)
        _say(gh, req, f"@{req.author}: the apply of `{project.name}` on {at} failed: {_quoted(applied.summary)}. "
                      "Part of it may be applied; the lock is released and tfbot checks the project again now, so "
                      f"this issue shows what still differs.{_log(svc, run_id)}")
        return "apply failed"
    _audit(svc, req, project, cmd.head_sha, "ok", applied.summary, run_id)
    rechecks.append(RECHECK_APPLIED)
    _say(gh, req, f"@{req.author} applied the plan of `{project.name}` on {at}, the one this issue shows "
                  f"({_quoted(planned.summary)}): {_quoted(applied.summary)}{_log(svc, run_id)}\n\n"
                  "The lock is released. tfbot checks the project again now and closes this issue when it is clean.")
    return "applied"


def _refused(svc: WorkerServices, gh: RepoAPI, req: DriftApplyRequest, project: Project,
             decision: DriftDecision) -> str:
    log.warning("%s#%d: drift apply of %s by %s refused: %s", req.repo, req.issue, project.name, req.author,
                decision.reason)
    _audit(svc, req, project, "", "refused", decision.reason)
    _say(gh, req, f"**apply refused:** {decision.reason}. Nothing was run.")
    return "refused"


def _audit(svc: WorkerServices, req: DriftApplyRequest, project: Project, sha: str, outcome: str, detail: str,
           run_id: str = "") -> None:
    audit.record(svc.redis, audit.AuditEntry(action="drift-apply", repo=req.repo, pull=req.issue,
                                             project=project.name, user=req.author, sha=sha, outcome=outcome,
                                             detail=detail, run_id=run_id))


def _say(gh: RepoAPI, req: DriftApplyRequest, text: str) -> None:
    gh.create_comment(req.issue, text)


def _quoted(line: str) -> str:
    """Terraform's one-line summary as code (it may hold PR-written text); `(none)` when empty."""
    return code_span(line) if line else "`(none)`"


def _log(svc: WorkerServices, run_id: str) -> str:
    url = svc.run_url(run_id)
    return f" Run log: {url}" if url else f" Run: `{run_id}`."


def report_interrupted(svc: WorkerServices, repo: str, installation: int, issue: int, author: str,
                       reason: str) -> int:
    """Tell drift issue `issue` that `author`'s apply stopped without finishing (`reason`: its process or worker
    died, so no `finally` released anything), name each lock the issue still holds and how to release it, and
    audit it. Returns how many locks the issue holds. Raises GitHubError (the job is retried)."""
    held = [lock for lock in svc.locks.locks_of_pull(repo, issue) if lock.kind == "drift"]
    if held:
        names = ", ".join(f"{code_span(lock.project)} ({lock.state.value})" for lock in held)
        what = (f"This issue still holds the lock of {names}: Terraform may have changed part of the infrastructure "
                f"and its state may be locked. Look at the run log, then release the lock on tfbot's lock page or "
                f"with `tfbot unlock` (with a reason), and comment `apply` again; the next drift check shows what "
                f"is left.")
    else:
        what = "It holds no lock any more. The next drift check shows what is left."
    svc.github.repo(installation, repo).create_comment(
        issue, f"@{author}: the apply from this issue stopped before it finished: {reason}. {what}")
    for project in [lock.project for lock in held] or [""]:
        audit.record(svc.redis, audit.AuditEntry(action="drift-apply", repo=repo, pull=issue, project=project,
                                                 user=author, outcome="interrupted", detail=reason))
    log.warning("drift apply %s#%d by %s interrupted: %s; %d lock(s) still held", repo, issue, author, reason,
                len(held))
    return len(held)
