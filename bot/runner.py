"""Runs one project of one command: lock → checkout → Terraform workflow → store plan → result.

The handler decided *what* to run (a command over projects); this module decides *how* one project runs.
Every path ends in a ProjectResult, never an exception, so a command always completes and reports.
"""
from __future__ import annotations

import logging
import tempfile
import time
import traceback
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bot import audit
from bot.models import LockState, Outcome, Project, ProjectResult, ResourceChange
from bot.plan_store import PlanStoreError, plan_key
from bot.queue import enqueue_event
from bot.records import Command, PlanRecord, project_to_dict
from bot.targets import Target, ensure_commit, merged_target, same_content
from bot.workflows import ApplyOutcome, PlanOutcome, run_apply_steps, run_plan_steps

log = logging.getLogger(__name__)


class Superseded(Exception):
    """A newer push made this plan pointless; its command will not report."""


class Refused(Exception):
    """The command cannot run for this project now; the message says why and what to do."""


class PlanRefused(Exception):
    """The saved plan file is missing or does not match its recorded SHA-256."""


class LockLost(Exception):
    """The PR no longer holds the lock (unlocked, or handed on) while its run was under way."""


def run_project(svc: Any, cmd: Command, project: Project) -> ProjectResult:
    """Run `project` for `cmd`; any failure of tfbot itself becomes an ERROR result on the PR."""
    try:
        if cmd.kind == "plan":
            return _plan(svc, cmd, project)
        if cmd.kind == "apply":
            return _apply_comment(svc, cmd, project)
        if cmd.kind == "merge":
            return _apply_on_merge(svc, cmd, project)
        raise ValueError(f"unknown command kind {cmd.kind!r}")
    except Superseded:
        return ProjectResult(project, Outcome.SUPERSEDED, head_sha=cmd.head_sha)
    except Refused as exc:
        return ProjectResult(project, Outcome.REFUSED, head_sha=cmd.head_sha, message=str(exc))
    except PlanRefused as exc:
        return ProjectResult(project, Outcome.REFUSED, head_sha=cmd.head_sha, message=(
            f"The saved plan of `{project.name}` was refused: {exc}. Nothing was applied and the lock stays with "
            "this PR. A plan file changed at rest is a security event: find out why, then comment `plan` to make "
            "a new one."))
    except LockLost:
        return ProjectResult(project, Outcome.REFUSED, head_sha=cmd.head_sha, message=(
            f"This PR lost the lock of `{project.name}` while tfbot worked on it (someone unlocked it); "
            "nothing was applied. Comment `plan` to take it again."))
    except Exception as exc:  # noqa: BLE001 - reported on the PR, and logged with its traceback
        log.exception("%s %s#%d %s failed inside tfbot", cmd.kind, cmd.repo, cmd.pull, project.name)
        return ProjectResult(
            project,
            Outcome.ERROR,
            summary=f"tfbot could not run {cmd.kind}: {type(exc).__name__}",
            output=svc.mask(f"{exc}\n\n{traceback.format_exc(limit=3)}"),
            message="This is a fault in tfbot or its surroundings, not in your Terraform code. "
            f"Comment `{cmd.kind if cmd.kind != 'merge' else 'apply'}` to try again.",
            head_sha=cmd.head_sha,
        )


# --- plan -------------------------------------------------------------------------------------------


def _plan(svc: Any, cmd: Command, project: Project) -> ProjectResult:
    _check_current(svc, cmd)
    acquired = svc.locks.try_acquire(
        project,
        cmd.pull,
        cmd.info.get("author", cmd.user),
        pull_title=cmd.info.get("title", ""),
        pull_url=cmd.info.get("html_url", ""),
        waiter={"installation": cmd.installation},
    )
    if not acquired.acquired and not acquired.already_held:
        return ProjectResult(project, Outcome.LOCKED, message=locked_message(project, acquired.lock,
                             acquired.queue_position), head_sha=cmd.head_sha)
    lock = acquired.lock
    if not acquired.already_held and not _pull_is_open(svc, cmd):
        # Closed or merged between the event and this run: it must not hold a lock.
        _release(svc, cmd, project, lock.token)
        return ProjectResult(project, Outcome.REFUSED, head_sha=cmd.head_sha,
                             message=f"#{cmd.pull} is no longer open; it does not take the lock of `{project.name}`.")
    with svc.locks.run_guard(project, holder=cmd.id, wait=svc.config.terraform.timeout + 60):
        _check_current(svc, cmd)
        target = merged_target(svc, cmd, cmd.head_sha)
        outcome, run_id = _run_plan(svc, cmd, project, target)
        if not outcome.ok:
            _set_state(svc, project, cmd, lock.token, LockState.PLAN_FAILED, summary=outcome.summary, run_id=run_id)
            return _failed(project, Outcome.PLAN_FAILED, outcome, run_id, cmd.head_sha,
                           "Fix the error and push, or comment `plan` to run it again.")
        _set_state(svc, project, cmd, lock.token, LockState.PLANNED, summary=outcome.summary, run_id=run_id)
        result = _planned(project, outcome, run_id, cmd.head_sha)
        result.message = target.describe(cmd.info.get("base_ref") or "main")
        return result


def _run_plan(svc: Any, cmd: Command, project: Project, target: Target) -> tuple[PlanOutcome, str]:
    """Check out `target`, run the plan pipeline, store the plan file and its record; return outcome and run id."""
    run_id = new_run_id()
    started = time.time()
    sha = target.sha
    workdir = _working_dir(svc, cmd, project, target)
    workflow = svc.workflows[project.workflow]
    with tempfile.TemporaryDirectory(dir=svc.tmp_dir) as tmp:
        plan_file = Path(tmp) / "plan.tfplan"
        outcome = run_plan_steps(svc.terraform, workflow, workdir, project.workspace, plan_file)
        if outcome.ok:
            key = plan_key(project, cmd.pull, target.head_sha)
            digest = svc.plans.put(key, plan_file)
            svc.records.save_plan(PlanRecord(
                project=project_to_dict(project), pull=cmd.pull, head_sha=target.head_sha, base_sha=target.base_sha,
                plan_sha=sha,
                key=key, sha256=digest, summary=outcome.summary, changes=[list(c) for c in outcome.resource_changes],
                digest=changes_digest(outcome.plan_json),
                run_id=run_id, user=cmd.user,
            ))
    _save_run(svc, run_id, "plan", cmd, project, target, started, outcome.ok, outcome.summary, outcome.steps)
    return outcome, run_id


# --- apply ------------------------------------------------------------------------------------------
# Every apply path takes the project's run guard first and only then reads the lock and the saved plan:
# a push, a merge or a second `apply` running meanwhile must be seen, not raced.


def _guard(svc: Any, cmd: Command, project: Project) -> Any:
    return svc.locks.run_guard(project, holder=cmd.id, wait=svc.config.terraform.timeout + 60)


def _held_lock(svc: Any, cmd: Command, project: Project) -> Any:
    lock = svc.locks.get(project)
    if lock is None or lock.pull != cmd.pull:
        holder = f"#{lock.pull}" if lock else "nobody"
        raise Refused(f"This PR does not hold the lock of `{project.name}` (held by {holder}); nothing was applied.")
    return lock


def _apply_comment(svc: Any, cmd: Command, project: Project) -> ProjectResult:
    """`apply` commented on an open PR: apply the saved, shown plan if it still describes the PR as it will merge."""
    if cmd.info.get("merged"):
        return _apply_after_merge(svc, cmd, project)
    with _guard(svc, cmd, project):
        lock = _held_lock(svc, cmd, project)
        if lock.state == LockState.APPLIED:
            raise Refused(f"`{project.name}` was already applied from this PR; merge it to release the lock.")
        plan = svc.records.plan(project, cmd.pull)
        if plan is None or not plan.posted:
            raise Refused(f"There is no plan of `{project.name}` shown on this PR to apply: comment `plan` first.")
        if plan.head_sha != cmd.head_sha:
            _replan(svc, cmd, project, "the PR's head moved since its plan")
            return ProjectResult(project, Outcome.STALE, head_sha=cmd.head_sha, message=(
                f"The saved plan was made for {plan.head_sha[:8]}, not for {cmd.head_sha[:8]}: nothing was applied. "
                "tfbot is planning again; review the new plan and comment `apply` again."))
        now = merged_target(svc, cmd, cmd.head_sha)
        ensure_commit(svc, cmd, plan.plan_sha or plan.head_sha, plan.head_sha, plan.base_sha)
        if not same_content(svc, cmd.repo, project, now.sha, plan.plan_sha or plan.head_sha):
            _replan(svc, cmd, project, "the base branch changed this project since its plan")
            return ProjectResult(project, Outcome.STALE, head_sha=cmd.head_sha, message=(
                f"`{cmd.info.get('base_ref') or 'main'}` changed this project since the plan was made: nothing was "
                "applied. tfbot is planning the PR merged into it now; review that plan and comment `apply` again."))
        outcome, run_id = _apply_saved(svc, cmd, project, plan, lock.token)
        if not outcome.ok:
            return _apply_failed(svc, cmd, project, lock.token, outcome, run_id)
        if not svc.locks.set_state(project, cmd.pull, lock.token, LockState.APPLIED, summary=outcome.summary,
                                   run_id=run_id):
            return _applied(project, outcome, run_id, cmd.head_sha,
                            "Applied, but the lock was taken from this PR meanwhile (the PR was closed, or unlocked).")
        return _applied(project, outcome, run_id, cmd.head_sha,
                        "The lock stays with this PR until it is merged or closed: main does not have this change yet.")


def _apply_on_merge(svc: Any, cmd: Command, project: Project) -> ProjectResult:
    """The PR was merged: apply the reviewed plan only if it is exactly what main now holds; else ask."""
    merge_sha = cmd.info["merge_commit_sha"]
    with _guard(svc, cmd, project):
        lock = _held_lock(svc, cmd, project)
        if lock.state == LockState.APPLIED and _applied_head(svc, lock) == cmd.head_sha:
            _release(svc, cmd, project, lock.token)
            return ProjectResult(project, Outcome.APPLIED, summary=lock.summary, head_sha=cmd.head_sha,
                                 message="Applied before the merge; the lock is released.")
        plan = svc.records.plan(project, cmd.pull)
        reviewed = plan if plan is not None and plan.posted and plan.head_sha == cmd.head_sha else None
        ensure_commit(svc, cmd, merge_sha)
        if reviewed is not None:  # made on another host, perhaps: its merge commit is re-made here
            ensure_commit(svc, cmd, reviewed.plan_sha or reviewed.head_sha, reviewed.head_sha, reviewed.base_sha)
        if reviewed is not None and same_content(svc, cmd.repo, project, merge_sha,
                                                 reviewed.plan_sha or reviewed.head_sha):
            outcome, run_id = _apply_saved(svc, cmd, project, reviewed, lock.token)
            if not outcome.ok:
                return _apply_failed(svc, cmd, project, lock.token, outcome, run_id)
            _release(svc, cmd, project, lock.token)
            return _applied(project, outcome, run_id, cmd.head_sha, "The lock is released.")
        # What main holds is not what was reviewed: plan it, and apply only a plan identical to the reviewed one.
        fresh, plan_run = _run_plan(svc, cmd, project, Target(merge_sha, cmd.head_sha, ""))
        if not fresh.ok:
            _set_state(svc, project, cmd, lock.token, LockState.PLAN_STALE, summary=fresh.summary, run_id=plan_run)
            return _failed(project, Outcome.PLAN_FAILED, fresh, plan_run, cmd.head_sha,
                           "The plan of the merge commit failed, so nothing was applied. The lock stays with this PR; "
                           "fix main, then comment `apply` here.")
        new_plan = svc.records.plan(project, cmd.pull)
        if reviewed is not None and reviewed.digest and new_plan is not None and new_plan.digest == reviewed.digest:
            outcome, run_id = _apply_saved(svc, cmd, project, new_plan, lock.token)
            if not outcome.ok:
                return _apply_failed(svc, cmd, project, lock.token, outcome, run_id)
            _release(svc, cmd, project, lock.token)
            return _applied(project, outcome, run_id, cmd.head_sha,
                            "main had moved since the reviewed plan; the merge commit's plan makes exactly the same "
                            "changes, so it was applied. The lock is released.")
        _set_state(svc, project, cmd, lock.token, LockState.PLAN_STALE, summary=fresh.summary, run_id=plan_run)
        result = _planned(project, fresh, plan_run, merge_sha)
        result.outcome = Outcome.STALE
        if reviewed is None:
            why = ("there is no reviewed plan of this PR's final head for this project (shown below: the plan of its "
                   "merge commit)")
        else:
            why = "main changed this project after the reviewed plan, and the plan of the merge commit differs from it"
        result.message = (f"{why[0].upper()}{why[1:]}. Nothing was applied; the lock stays with this PR. Review "
                          "this plan and comment `apply` here to apply it.")
        return result


def _apply_after_merge(svc: Any, cmd: Command, project: Project) -> ProjectResult:
    """`apply` on a merged PR: apply the plan shown here if main still holds that; else show main's plan."""
    base_sha = cmd.info["base_head_sha"]
    base_ref = cmd.info.get("base_ref") or "main"
    with _guard(svc, cmd, project):
        lock = _held_lock(svc, cmd, project)
        plan = svc.records.plan(project, cmd.pull)
        ensure_commit(svc, cmd, base_sha)
        if plan is not None and plan.posted:
            ensure_commit(svc, cmd, plan.plan_sha or plan.head_sha, plan.head_sha, plan.base_sha)
        if plan is not None and plan.posted and same_content(svc, cmd.repo, project, base_sha,
                                                             plan.plan_sha or plan.head_sha):
            outcome, run_id = _apply_saved(svc, cmd, project, plan, lock.token)
            if not outcome.ok:
                return _apply_failed(svc, cmd, project, lock.token, outcome, run_id)
            _release(svc, cmd, project, lock.token)
            return _applied(project, outcome, run_id, base_sha,
                            f"Applied the plan shown here, which is what `{base_ref}` at {base_sha[:8]} holds. "
                            "The lock is released.")
        fresh, plan_run = _run_plan(svc, cmd, project, Target(base_sha, base_sha, ""))
        if not fresh.ok:
            _set_state(svc, project, cmd, lock.token, LockState.PLAN_FAILED, summary=fresh.summary, run_id=plan_run)
            return _failed(project, Outcome.PLAN_FAILED, fresh, plan_run, base_sha,
                           f"The plan of `{base_ref}` failed; the lock stays with this PR.")
        _set_state(svc, project, cmd, lock.token, LockState.PLAN_STALE, summary=fresh.summary, run_id=plan_run)
        result = _planned(project, fresh, plan_run, base_sha)
        result.outcome = Outcome.STALE
        result.message = (f"`{base_ref}` is now at {base_sha[:8]}, which is not what the plan shown here was made on. "
                          "Nothing was applied; this is its plan. Review it and comment `apply` again to apply it.")
        return result


def _applied_head(svc: Any, lock: Any) -> str | None:
    """The PR head whose plan the lock's last run applied."""
    run = svc.records.run(lock.run_id) if lock.run_id else None
    return str(run[0].get("sha")) if run else None


def _apply_saved(svc: Any, cmd: Command, project: Project, plan: PlanRecord, token: int) -> tuple[ApplyOutcome, str]:
    run_id = new_run_id()
    started = time.time()
    target = Target(plan.plan_sha or plan.head_sha, plan.head_sha, plan.base_sha)
    with tempfile.TemporaryDirectory(dir=svc.tmp_dir) as tmp:
        plan_file = Path(tmp) / "plan.tfplan"
        try:
            svc.plans.get(plan.key, plan_file, plan.sha256)
        except PlanStoreError as exc:
            audit.record(svc.redis, audit.AuditEntry(action="apply", repo=cmd.repo, pull=cmd.pull, project=project.name,
                                                     user=cmd.user, sha=target.sha, outcome="refused", detail=str(exc)))
            raise PlanRefused(str(exc)) from None
        _set_state(svc, project, cmd, token, LockState.APPLYING, run_id=run_id)
        workdir = _working_dir(svc, cmd, project, target)
        outcome = run_apply_steps(svc.terraform, svc.workflows[project.workflow], workdir, project.workspace, plan_file)
    if outcome.ok:
        svc.plans.delete(plan.key)
        svc.records.delete_plan(project, cmd.pull)
    _save_run(svc, run_id, "apply", cmd, project, target, started, outcome.ok, outcome.summary, outcome.steps)
    return outcome, run_id


def _apply_failed(svc: Any, cmd: Command, project: Project, token: int, outcome: ApplyOutcome,
                  run_id: str) -> ProjectResult:
    # The apply ran: its failure is reported even if the lock was taken from this PR meanwhile.
    svc.locks.set_state(project, cmd.pull, token, LockState.APPLY_FAILED, summary=outcome.summary, run_id=run_id)
    return _failed(project, Outcome.APPLY_FAILED, outcome, run_id, cmd.head_sha,
                   "The lock stays with this PR, so nobody else plans on a half-applied state. Fix the cause "
                   "(push a fix and merge it, or fix it outside), then comment `apply` here; or an authorized user "
                   "comments `unlock`.")


def _release(svc: Any, cmd: Command, project: Project, token: int) -> None:
    from bot.handover import release_and_hand_over

    release_and_hand_over(svc, project, cmd.pull, token, reason=f"#{cmd.pull} was applied")


# --- helpers ----------------------------------------------------------------------------------------


def changes_digest(plan_json: dict[str, Any] | None) -> str:
    """A hash of every planned change with its values, so two plans compare equal only if they do the same.

    Empty when Terraform's JSON was too large to keep: such plans never count as equal.
    """
    import hashlib
    import json

    if not plan_json:
        return ""
    changes = sorted(
        (rc.get("address", ""), json.dumps(rc.get("change", {}), sort_keys=True))
        for rc in plan_json.get("resource_changes", []) if rc.get("change", {}).get("actions") != ["no-op"]
    )
    return hashlib.sha256(json.dumps(changes).encode()).hexdigest()


def _set_state(svc: Any, project: Project, cmd: Command, token: int, state: LockState, **fields: str) -> None:
    """Record the lock's new state; LockLost if this PR no longer holds it under `token` (fencing)."""
    if not svc.locks.set_state(project, cmd.pull, token, state, **fields):
        raise LockLost()


def _check_current(svc: Any, cmd: Command) -> None:
    """A plan for an older head is dropped: a newer push has queued its own."""
    if cmd.kind == "plan":
        head = svc.records.head(cmd.repo, cmd.pull)
        if head and head != cmd.head_sha:
            log.info("plan of %s#%d at %s superseded by %s", cmd.repo, cmd.pull, cmd.head_sha[:8], head[:8])
            raise Superseded()


def _working_dir(svc: Any, cmd: Command, project: Project, target: Target) -> Path:
    ensure_commit(svc, cmd, target.sha, target.head_sha, target.base_sha)
    copy = svc.checkouts.working_copy(cmd.repo, cmd.pull, project_slug(project), target.sha)
    return copy / project.dir if project.dir != "." else copy


def _pull_is_open(svc: Any, cmd: Command) -> bool:
    return bool(svc.github.repo(cmd.installation, cmd.repo).pull(cmd.pull).state == "open")


def _replan(svc: Any, cmd: Command, project: Project, why: str) -> None:
    """Queue a fresh plan of one project of the PR, on its head merged into its base."""
    enqueue_event(svc.events_queue, "bot.jobs.replan", (project_to_dict(project), cmd.pull, cmd.installation, why),
                  f"replan {cmd.repo}#{cmd.pull} {project.name}")


def project_slug(project: Project) -> str:
    """A file-system-safe, unique name for a project's working copy."""
    import hashlib

    readable = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{project.dir}_{project.workspace}")[:60]
    return f"{readable}-{hashlib.sha256(project.id.encode()).hexdigest()[:8]}"


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:8]


def _save_run(svc: Any, run_id: str, kind: str, cmd: Command, project: Project, target: Target, started: float,
              ok: bool, summary: str, steps: list[Any]) -> None:
    # `sha` is the commit people know (the PR's head, or main's); `planned_sha` the one tfbot checked out.
    sha = target.head_sha
    output = "\n".join(f"$ {s.command}\n{s.output}" for s in steps)
    svc.records.save_run(run_id, {
        "id": run_id, "kind": kind, "repo": cmd.repo, "pull": cmd.pull, "project": project.name, "dir": project.dir,
        "workspace": project.workspace, "sha": sha, "planned_sha": target.sha, "base_sha": target.base_sha,
        "user": cmd.user, "started_at": started, "duration": time.time() - started, "ok": ok, "summary": summary,
        "command_id": cmd.id,
    }, output)
    audit.record(svc.redis, audit.AuditEntry(
        action=kind, repo=cmd.repo, pull=cmd.pull, project=project.name, user=cmd.user, sha=sha,
        outcome="ok" if ok else "failed", detail=summary, run_id=run_id, at=started))
    log.info("%s %s#%d %s at %s: %s (run %s)", kind, cmd.repo, cmd.pull, project.name, sha[:8],
             summary or ("ok" if ok else "failed"), run_id)


def _planned(project: Project, outcome: PlanOutcome, run_id: str, sha: str) -> ProjectResult:
    return ProjectResult(
        project, Outcome.PLANNED, summary=outcome.summary,
        changes=[ResourceChange(a, addr) for a, addr in outcome.resource_changes],
        output=outcome.plan_output, run_id=run_id, head_sha=sha,
    )


def _applied(project: Project, outcome: ApplyOutcome, run_id: str, sha: str, message: str) -> ProjectResult:
    return ProjectResult(project, Outcome.APPLIED, summary=outcome.summary, output=outcome.apply_output,
                         run_id=run_id, head_sha=sha, message=message)


def _failed(project: Project, kind: Outcome, outcome: PlanOutcome | ApplyOutcome, run_id: str, sha: str,
            message: str) -> ProjectResult:
    failed = outcome.steps[-1] if outcome.steps else None
    return ProjectResult(project, kind, summary=outcome.summary, output=failed.output if failed else "",
                         run_id=run_id, head_sha=sha, message=message)


def locked_message(project: Project, lock: Any, position: int | None) -> str:
    """Who holds the lock, since when, how it will be released, and this PR's place in line."""
    since = datetime.fromtimestamp(lock.locked_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    place = f" This PR is number {position} in line" if position else " This PR is in line"
    return (
        f"`{project.name}` (dir `{project.dir}`, workspace `{project.workspace}`) is locked by #{lock.pull} "
        f"(@{lock.user}) since {since}, state: {lock.state.value}. The lock is released when #{lock.pull} is "
        f"merged and applied, or closed, or someone with write access comments `unlock` on #{lock.pull}."
        f"{place}: tfbot plans it automatically when the lock is released."
    )
