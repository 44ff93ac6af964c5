"""One drift check of one project: plan the default branch's head as a normal run would, without the PR lock, and
keep what it found: the check (bot/state/drift_checks.py), the run log, the issue, an audit entry, notifications.

As a normal run: the project's workflow (its plan steps), its binary, the sandbox, its plan-phase environment and
credentials, and the project's run guard, so no other Terraform run of the project goes on at the same time.
Unlike a PR's plan it takes no workspace lock: a project whose lock a PR holds is skipped, naming the PR (that PR
is about to change the infrastructure, so a difference now says nothing), and so is one busy with another run.
The plan file is thrown away: an `apply` on the issue plans again.

`check_project` never raises for Terraform, git or GitHub failing: the check is then `failed`, with the reason
(masked), and an open issue is told once.
"""
from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bot.adapters.git import CheckoutError
from bot.adapters.github import GitHubError
from bot.adapters.terraform import TerraformError
from bot.config.workflows import WorkflowError
from bot.drift import issues
from bot.drift.marker import DriftSubject
from bot.drift.transitions import IssueStep, set_digest, shown_digest, shown_plan_digest, transition
from bot.lifecycle.binaries import adapter, choose_binary
from bot.lifecycle.default_branch import Tip, fetch_tip
from bot.lifecycle.run_env import run_environment
from bot.lifecycle.runner import GUARD_WAIT, GuardLost, guard_fence, new_run_id, no_fit_outcome, project_slug
from bot.lifecycle.steps import PlanOutcome, run_plan_steps
from bot.models import Project
from bot.notify.emit import notify
from bot.notify.notices import Notice
from bot.projects.versions import NoFit
from bot.render.drift import DriftReport, failed_comment, resolved_comment
from bot.state import audit
from bot.state.drift_checks import DriftCheck, DriftChecks, DriftState
from bot.state.locks import GuardTimeout, RunGuard

if TYPE_CHECKING:
    from bot.adapters.github import IssueInfo, RepoAPI
    from bot.services import WorkerServices

log = logging.getLogger("tfbot.drift")
LINKS_KEPT = 20  # change-record links an issue lists at most (the newest)
BUSY = "skipped: busy with another run"  # the summary of a check skipped because another run held the guard
_FAILURES = (GitHubError, CheckoutError, TerraformError, WorkflowError, GuardLost, OSError, KeyError)


def check_project(svc: WorkerServices, project: Project, reason: str = "manual", link: str = "",
                  tip: Tip | None = None, user: str = "tfbot", retried_if_busy: bool = False) -> DriftCheck:
    """Check `project` now, because `reason` (`link`: a change record that asked, "" when none); `tip` is the default
    branch when the caller fetched it already. Returns the check as recorded, its issue fields set.

    `retried_if_busy`: the caller tries again later when another run holds the project; such a `busy` check is
    returned without being recorded or audited, so that a project busy for a while leaves one entry, not one per
    try."""
    base = DriftCheck(repo=project.repo, project=project.name, dir=project.dir, workspace=project.workspace,
                      state=DriftState.FAILED)
    done = _Done(svc, project, link, reason, user)
    try:
        tip = tip or fetch_tip(svc, project.repo)
        base = replace(base, sha=tip.sha)
        holder = _lock_holder(svc, project)
        if holder:
            return done(_skipped(base, holder))
        # The issue is written under the guard too: two checks of one project (two hosts) never both open one.
        with svc.locks.run_guard(project, holder=f"drift check {project.name}", wait=GUARD_WAIT) as guard:
            try:
                check, outcome = _guarded(svc, project, base, tip, guard)
            except _FAILURES as exc:
                return done(_failed(svc, base, exc), tip.api)
            return done(check, tip.api, outcome)
    except GuardTimeout:
        holder = svc.locks.guard_holder(project) or "another run"
        skipped = replace(base, state=DriftState.SKIPPED, summary=BUSY,
                          detail=f"the project is busy with another run ({holder}); checked again next time")
        if retried_if_busy:
            log.info("drift check of %s %s: busy with %s; tried again later", project.repo, project.name, holder)
            return skipped
        return done(skipped)
    except _FAILURES as exc:  # before the plan: GitHub or git
        return done(_failed(svc, base, exc), tip.api if tip is not None else None)


class _Done:
    """The end of every check: the open issue carried over, the issue synced, recorded, audited, logged. The project's
    last check is read here, under the run guard when the plan ran: a check that ended meanwhile is seen."""

    def __init__(self, svc: WorkerServices, project: Project, link: str, reason: str, user: str):
        self.svc, self.project, self.link, self.reason, self.user = svc, project, link, reason, user

    def __call__(self, check: DriftCheck, api: RepoAPI | None = None, outcome: PlanOutcome | None = None) -> DriftCheck:
        svc, project, link = self.svc, self.project, self.link
        store = DriftChecks(svc.redis)
        last = store.last(project.repo, project.dir, project.workspace)
        check = _carry(check, last, link)
        if api is not None and check.state is not DriftState.SKIPPED:
            check = _sync_issue(svc, api, project, check, last, outcome)
        store.record(check)
        audit.record(svc.redis, audit.AuditEntry(
            action="drift-check", repo=project.repo, pull=0, project=project.name, user=self.user, sha=check.sha,
            outcome=check.state.value,
            detail=f"{self.reason}{f' ({link})' if link else ''}: {check.detail or check.summary}",
            run_id=check.run_id, at=check.checked_at))
        log.info("drift check of %s %s (%s): %s %s", project.repo, project.name, self.reason, check.state.value,
                 check.detail or check.summary)
        return check


def busy(check: DriftCheck) -> bool:
    """Whether `check` was skipped only because another run of the project was under way (worth trying soon)."""
    return check.state is DriftState.SKIPPED and check.summary == BUSY


def _failed(svc: WorkerServices, base: DriftCheck, exc: Exception) -> DriftCheck:
    why = svc.mask(f"{type(exc).__name__}: {exc}" if isinstance(exc, KeyError) else str(exc))[-1500:]
    return replace(base, state=DriftState.FAILED, checked_at=time.time(), summary="failed", detail=why)


def _guarded(svc: WorkerServices, project: Project, base: DriftCheck, tip: Tip,
             guard: RunGuard) -> tuple[DriftCheck, PlanOutcome | None]:
    """Under the run guard: skip a project a PR took the lock of meanwhile; else plan it."""
    holder = _lock_holder(svc, project)
    if holder:
        return _skipped(base, holder), None
    outcome, run_id = _plan(svc, project, tip.sha, guard)
    check = replace(base, checked_at=time.time(), summary=outcome.summary, run_id=run_id, run_url=svc.run_url(run_id))
    if not outcome.ok:
        return replace(check, state=DriftState.FAILED,
                       detail=f"{outcome.failed_step or 'the plan'} failed: {outcome.summary}"), outcome
    if not outcome.has_changes:
        return replace(check, state=DriftState.CLEAN), outcome
    from bot.lifecycle.runner import changes_digest

    return replace(check, state=DriftState.DRIFTED, digest=changes_digest(outcome.plan_json),
                   resources=tuple(sorted(f"{action} {address}" for action, address in outcome.resource_changes))), \
        outcome


def _lock_holder(svc: WorkerServices, project: Project) -> str:
    lock = svc.locks.get(project)
    return f"{lock.repo}#{lock.pull}" if lock is not None else ""


def _skipped(base: DriftCheck, holder: str) -> DriftCheck:
    return replace(base, state=DriftState.SKIPPED, summary=f"skipped: {holder} holds the lock",
                   detail=f"{holder} holds the lock; checked again once it is released")


def _plan(svc: WorkerServices, project: Project, sha: str, guard: RunGuard) -> tuple[PlanOutcome, str]:
    """Check out `sha` and run the project's plan steps as a PR's plan runs them; keep the run log."""
    run_id = new_run_id()
    started = time.time()
    root = svc.checkouts.branch_copy(project.repo, project_slug(project), sha)
    workdir = root / project.dir if project.dir != "." else root
    workflow = svc.workflows[project.workflow]
    binary = choose_binary(svc, project, workdir)
    label = ""
    if isinstance(binary, NoFit):
        outcome = no_fit_outcome(binary)
    else:
        label = binary.label
        with tempfile.TemporaryDirectory(dir=svc.tmp_dir) as tmp:
            outcome = run_plan_steps(adapter(svc, binary), workflow, workdir, project.workspace,
                                     Path(tmp) / "plan.tfplan", before_step=guard_fence(guard),
                                     run_env=run_environment(svc, project.repo, 0, project, "plan", run_id), root=root)
        outcome.binary = label
    output = "\n".join((f"$ {s.command}\n" if s.command else "") + s.output for s in outcome.steps)
    svc.records.save_run(run_id, {
        "id": run_id, "kind": "drift", "repo": project.repo, "pull": 0, "project": project.name, "dir": project.dir,
        "workspace": project.workspace, "sha": sha, "planned_sha": sha, "base_sha": "", "user": "tfbot",
        "started_at": started, "duration": time.time() - started, "ok": outcome.ok, "summary": outcome.summary,
        "command_id": "", "binary": label, "extra_args": [],
    }, output)
    return outcome, run_id


def _carry(check: DriftCheck, last: DriftCheck | None, link: str) -> DriftCheck:
    """What the project's open issue was, as the last check left it, and the change records that asked so far."""
    links = tuple(dict.fromkeys([*(last.links if last else ()), *([link] if link else [])]))[-LINKS_KEPT:]
    if last is None or not last.issue:
        return replace(check, links=links)
    check = replace(check, issue=last.issue, issue_url=last.issue_url, issue_resources=last.issue_resources,
                    drifted_since=last.drifted_since, links=links)
    if check.state in (DriftState.SKIPPED, DriftState.FAILED):
        # A round that could not tell leaves the issue as it was: the plan it shows (and an `apply` on it) stays.
        check = replace(check, digest=last.digest, resources=last.resources)
    return check


def _sync_issue(svc: WorkerServices, api: RepoAPI, project: Project, check: DriftCheck, last: DriftCheck | None,
                outcome: PlanOutcome | None) -> DriftCheck:
    """Open, update, tell or close the project's issue as `transition` says; emit the notification. A GitHub
    failure turns the check `failed` (the issue as it was, the reason in `detail`)."""
    subject = DriftSubject(repo=project.repo, dir=project.dir, workspace=project.workspace, name=project.name)
    try:
        found = issues.find_open_issue(api, subject, svc.config.github.app_id, svc.bot_login, check.issue)
        step = transition(check.state.value, found is not None, shown_digest(found.body) if found else "",
                          check.resources, last.state.value if last else "")
        check = _with_issue(check, found)
        if step.issue is IssueStep.OPEN:
            now = check.checked_at
            number, url = issues.open_issue(api, subject, _report(check, outcome, now))
            check = replace(check, issue=number, issue_url=url, issue_resources=check.resources, drifted_since=now)
        elif step.issue is IssueStep.UPDATE and found is not None:
            since = check.drifted_since or check.checked_at
            shown = check.issue_resources if set_digest(check.issue_resources) == shown_digest(found.body) else ()
            issues.update_issue(api, found.number, subject, _report(check, outcome, since),
                                shown if step.comment else None, shown_plan_digest(found.body))
            check = replace(check, issue_resources=check.resources, drifted_since=since)
        elif step.issue is IssueStep.CLOSE and found is not None:
            issues.close_issue(api, found.number, resolved_comment(check.checked_at, check.sha, check.run_id,
                                                                    check.run_url))
            check = replace(check, issue=0, issue_url="", issue_resources=(), drifted_since=0.0, links=())
        elif step.issue is IssueStep.NOTE_FAILURE and found is not None:
            api.create_comment(found.number, failed_comment(check.checked_at, check.detail, check.run_id,
                                                            check.run_url))
        if check.state is DriftState.CLEAN:
            check = replace(check, links=())
    except GitHubError as exc:
        why = svc.mask(str(exc))
        log.warning("drift issue of %s %s not written: %s", project.repo, project.name, why)
        return replace(check, state=DriftState.FAILED,
                       detail=f"found {check.state.value}, but the issue could not be written: {why}")
    if step.notify:
        summary = check.summary + (f" (issue {check.issue_url})" if check.issue_url else "")
        notify(svc, Notice(event=step.notify, repo=project.repo, project=project.name, summary=summary,
                           run_url=check.run_url, at=check.checked_at, user="tfbot"))
    return check


def _with_issue(check: DriftCheck, found: IssueInfo | None) -> DriftCheck:
    """The check with the issue GitHub really has open (what Redis knew may be stale or lost)."""
    if found is None:
        return replace(check, issue=0, issue_url="", issue_resources=(), drifted_since=0.0)
    if found.number != check.issue:  # found by its marker: Redis knew another number, or none
        return replace(check, issue=found.number, issue_url=found.html_url, issue_resources=(), drifted_since=0.0)
    return replace(check, issue_url=found.html_url)


def _report(check: DriftCheck, outcome: PlanOutcome | None, since: float) -> DriftReport:
    return DriftReport(repo=check.repo, project=check.project, dir=check.dir, workspace=check.workspace, sha=check.sha,
                       summary=check.summary, resources=check.resources,
                       plan_output=outcome.plan_output if outcome else "", run_id=check.run_id, run_url=check.run_url,
                       checked_at=check.checked_at, drifted_since=since, links=check.links, digest=check.digest)
