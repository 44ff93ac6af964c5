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
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from bot.state import audit
from bot.lifecycle.decision import Action, Decision, Event, Facts, LockView, PlanView, PullState, decide
from bot.state.locks import GuardTimeout, RunGuard
from bot.models import LockInfo, LockState, Outcome, Project, ProjectResult, ResourceChange
from bot.adapters.plan_store import PlanStoreError, plan_key
from bot.state.records import PR_CLOSED, Command, PlanRecord, project_to_dict
from bot.lifecycle.targets import (Target, applied_holds_target, ensure_commit, merged_target, same_content,
                                   same_tree)
from bot.lifecycle.steps import ApplyOutcome, PlanOutcome, run_apply_steps, run_plan_steps
from bot.lifecycle.run_env import run_environment
from bot.lifecycle.binaries import adapter, choose_binary, plan_binary
from bot.lifecycle.checks import start_check
from bot.projects.versions import NoFit
from bot.plan_args import public, shown

if TYPE_CHECKING:
    from bot.adapters.terraform import TerraformResult
    from bot.services import WorkerServices

log = logging.getLogger(__name__)


class Superseded(Exception):
    """A newer push made this plan pointless; its command will not report."""


class Refused(Exception):
    """The command cannot run for this project now; the message says why and what to do."""


class PlanRefused(Exception):
    """The saved plan cannot be applied: its file is missing or does not match its recorded SHA-256, or the workflow
    it was made with is gone."""


class LockLost(Exception):
    """The PR no longer holds the lock (unlocked, or handed on) while its run was under way."""


class ProjectBusy(Exception):
    """Another run holds the project's run guard: the job is deferred, not held in a waiting worker."""


class GuardLost(Exception):
    """The run's guard expired while it ran (a stall longer than its TTL): another run may hold it now."""


class ApplyInterrupted(Exception):
    """An apply stopped after a step that may change the infrastructure had begun; its lock is now `apply failed`."""


def run_project(svc: WorkerServices, cmd: Command, project: Project) -> ProjectResult:
    """Run `project` for `cmd`; any failure of tfbot itself becomes an ERROR result on the PR."""
    svc.records.touch(cmd.repo, cmd.pull)  # a run: the PR's locks are not idle (bot/lifecycle/expiry.py)
    try:
        if cmd.kind == "plan":
            return _plan(svc, cmd, project)
        if cmd.kind in _EVENTS:
            return _execute(svc, cmd, project, _event_of(cmd))
        raise ValueError(f"unknown command kind {cmd.kind!r}")
    except GuardTimeout as exc:
        raise ProjectBusy(str(exc)) from None
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
    except ApplyInterrupted as exc:
        log.error("apply %s#%d %s stopped after it began: %s", cmd.repo, cmd.pull, project.name, exc.__cause__)
        return ProjectResult(project, Outcome.ERROR, head_sha=cmd.head_sha, summary="apply interrupted",
                             output=svc.mask(str(exc)), message=(
            f"The apply of `{project.name}` stopped after it had begun to change the infrastructure ({exc}), so "
            "part of it may be applied. The lock stays with this PR as `apply failed`: nobody else plans on that "
            "state, and the PR counts as having applied what the default branch lacks. Check the state, then "
            "comment `apply` here to run it again."))
    except GuardLost:
        return ProjectResult(project, Outcome.ERROR, head_sha=cmd.head_sha, summary="tfbot lost the run guard", message=(
            f"tfbot lost the run guard of `{project.name}` in the middle of this run (its worker stalled longer than "
            "the guard lives, so another run could start): it stopped before the next step and applied nothing. "
            f"Comment `{'apply' if cmd.kind != 'plan' else 'plan'}` to run it again."))
    except Exception as exc:  # noqa: BLE001 - reported on the PR, and logged with its traceback
        log.exception("%s %s#%d %s failed inside tfbot", cmd.kind, cmd.repo, cmd.pull, project.name)
        return ProjectResult(
            project,
            Outcome.ERROR,
            summary=f"tfbot could not run {cmd.kind}: {type(exc).__name__}",
            output=svc.mask(f"{exc}\n\n{traceback.format_exc(limit=3)}"),
            message="This is a fault in tfbot or its surroundings, not in your Terraform code. "
            f"Comment `{'plan' if cmd.kind == 'plan' else 'apply'}` to try again.",
            head_sha=cmd.head_sha,
        )


# Command kinds that go through the decision table (bot/lifecycle/decision.py) under the run guard.
_EVENTS = {"apply": Event.APPLY, "merge": Event.MERGE, "handover": Event.HANDOVER}


def _event_of(cmd: Command) -> Event:
    return _EVENTS[cmd.kind]


def pr_state(cmd: Command) -> PullState:
    """The PR's state as the command recorded it when it was started."""
    return "merged" if cmd.info.get("merged") else ("closed" if cmd.info.get("state") == "closed" else "open")


def applies(cmd: Command) -> bool:
    """Whether the PR's base branch (the branch it was merged into, once merged) is one tfbot applies."""
    return bool(cmd.info.get("applies", True))


# --- plan -------------------------------------------------------------------------------------------


def _plan(svc: WorkerServices, cmd: Command, project: Project) -> ProjectResult:
    _check_current(svc, cmd)
    first = decide(Event.PLAN, Facts(pull=cmd.pull, pr_state=pr_state(cmd), applies=applies(cmd),
                                     head_sha=cmd.head_sha))
    if first.action is Action.PLAN_UNLOCKED:
        return _plan_unlocked(svc, cmd, project)
    held = svc.locks.get(project)
    if (held is None or held.pull != cmd.pull) and not _pull_is_open(svc, cmd):
        # Closed or merged between the event and this run: it must not take the lock (nor join its line).
        return _no_longer_open(cmd, project)
    acquired = svc.locks.try_acquire(
        project,
        cmd.pull,
        cmd.info.get("author", cmd.user),
        pull_title=cmd.info.get("title", ""),
        pull_url=cmd.info.get("html_url", ""),
        waiter={"installation": cmd.installation},
        command_id=cmd.id,
    )
    if not acquired.acquired and not acquired.already_held:
        return ProjectResult(project, Outcome.LOCKED, message=locked_message(project, acquired.lock,
                             acquired.queue_position), head_sha=cmd.head_sha)
    lock = acquired.lock
    if not acquired.already_held and not _pull_is_open(svc, cmd):
        # Taken now: closed since the check above (its handler found nothing to release), or it held the lock when
        # asked above but lost it before taking it again. Only the lock exactly as this job took it is let go: once
        # another command of the PR moved it on (a merge applying it, a plan of the default branch gone stale), it is
        # that command's, whatever this job read.
        _release(svc, cmd, project, lock.token, "it is no longer open", mode="taken")
        return _no_longer_open(cmd, project)
    with _guard(svc, cmd, project) as guard:
        _check_current(svc, cmd)
        lock = svc.locks.get(project) or lock
        decision = decide(Event.PLAN, Facts(pull=cmd.pull, pr_state=pr_state(cmd), applies=applies(cmd),
                                            head_sha=cmd.head_sha, lock=LockView.of(lock)))
        if decision.action is Action.REFUSE:
            raise Refused(f"`{project.name}` was not planned: {decision.reason}.")
        if lock.state is LockState.PLANNING and lock.command_id != cmd.id:
            # Handed over, or taken by a job that never ran: this run is the one planning now, and the one a
            # report of its death may mark failed.
            _set_state(svc, project, cmd, lock.token, LockState.PLANNING)
        target = merged_target(svc, cmd, cmd.head_sha)
        extra = _extra_args(cmd)
        earlier = svc.records.plan(project, cmd.pull)
        outcome, run_id = run_plan(svc, cmd, project, target, guard, extra)
        if not outcome.ok:
            _set_state(svc, project, cmd, lock.token, LockState.PLAN_FAILED, summary=outcome.summary, run_id=run_id,
                       extra_args=shown(public(extra)))
            return _failed(project, Outcome.PLAN_FAILED, outcome, run_id, cmd.head_sha,
                           "Fix the error and push, or comment `plan` to run it again.", extra)
        _set_state(svc, project, cmd, lock.token, LockState.PLANNED, summary=outcome.summary, run_id=run_id,
                   extra_args=shown(public(extra)))
        result = _planned(project, outcome, run_id, cmd.head_sha, extra)
        result.message = target.describe(cmd.info.get("base_ref") or "main") + _replaces(earlier, extra)
        after = decide(Event.PLAN, Facts(pull=cmd.pull, pr_state=pr_state(cmd), applies=applies(cmd),
                                         head_sha=cmd.head_sha, lock=LockView.of(svc.locks.get(project)),
                                         fresh=_plan_view(outcome, cmd, extra)))
        if after.action is Action.RELEASE and _release(svc, cmd, project, lock.token, after.reason, mode="close"):
            result.message += (" This plan changes nothing, so the lock is not kept: other PRs may plan this "
                               "project. Merging this PR still plans the default branch and applies it if needed.")
        return result


def _extra_args(cmd: Command) -> tuple[str, ...]:
    """The extra arguments of a `plan -- ...` comment, checked against the allowlist when the comment came in."""
    return tuple(cmd.info.get("extra_args") or ())


def _replaces(earlier: PlanRecord | None, extra: tuple[str, ...]) -> str:
    """Which plan is current, when a plain plan takes the place of the reviewed one made with extra arguments."""
    if earlier is None or not earlier.extra_args or extra:
        return ""
    return (f" It is made without extra arguments and replaces the plan made with `{shown(earlier.extra_args)}`: "
            "`apply` applies this one.")


def _no_longer_open(cmd: Command, project: Project) -> ProjectResult:
    return ProjectResult(project, Outcome.REFUSED, head_sha=cmd.head_sha,
                         message=f"#{cmd.pull} is no longer open; it does not take the lock of `{project.name}`.")


def _plan_unlocked(svc: WorkerServices, cmd: Command, project: Project) -> ProjectResult:
    """A PR into a branch tfbot does not apply: plan it (guarded, like any run) but take no lock."""
    base = cmd.info.get("base_ref") or "main"
    kept = _let_go(svc, cmd, project)
    extra = _extra_args(cmd)
    with _guard(svc, cmd, project) as guard:
        _check_current(svc, cmd)
        target = merged_target(svc, cmd, cmd.head_sha)
        outcome, run_id = run_plan(svc, cmd, project, target, guard, extra)
    if not outcome.ok:
        return _failed(project, Outcome.PLAN_FAILED, outcome, run_id, cmd.head_sha,
                       "Fix the error and push, or comment `plan` to run it again.", extra)
    result = _planned(project, outcome, run_id, cmd.head_sha, extra)
    result.message = (f"{target.describe(base)} `{base}` is not a branch tfbot applies, so this PR takes no lock "
                      "and merging it applies nothing; its changes are planned again when they reach the default "
                      "branch in a PR of their own.")
    if kept:
        result.message += (f" It still holds the lock of `{project.name}` from before its base changed: it applied "
                           "changes there that the default branch does not hold (see the lock page).")
    result.applicable = False
    return result


def _let_go(svc: WorkerServices, cmd: Command, project: Project) -> bool:
    """A PR that may take no lock lets go of the one it holds (retargeted after it took it, or handed it while in
    line) and leaves the waiting line; True when it keeps a lock the release script refuses (flagged by an apply)."""
    lock = svc.locks.get(project)
    svc.locks.leave_queue(project, cmd.pull)
    if lock is None or lock.pull != cmd.pull:
        return False
    return not _release(svc, cmd, project, lock.token, "its base branch is not one tfbot applies", mode="close")


def run_plan(svc: WorkerServices, cmd: Command, project: Project, target: Target,
             guard: RunGuard | None = None, extra_args: tuple[str, ...] = ()) -> tuple[PlanOutcome, str]:
    """Check out `target`, run the plan pipeline (with a comment's `extra_args`), store the plan file and its
    record (under `cmd.pull`); return outcome and run id. Also how a drift issue's `apply` plans the default
    branch (bot/drift/apply.py)."""
    run_id = new_run_id()
    started = time.time()
    sha = target.sha
    workdir = _working_dir(svc, cmd, project, target)
    workflow = svc.workflows[project.workflow]
    binary = choose_binary(svc, project, workdir)
    if isinstance(binary, NoFit):  # failed before anything ran: nothing is stored but the run's log
        outcome = no_fit_outcome(binary)
        _save_run(svc, run_id, "plan", cmd, project, target, started, False, outcome.summary, outcome.steps)
        return outcome, run_id
    with tempfile.TemporaryDirectory(dir=svc.tmp_dir) as tmp:
        plan_file = Path(tmp) / "plan.tfplan"
        outcome = run_plan_steps(adapter(svc, binary), workflow, workdir, project.workspace, plan_file,
                                 before_step=guard_fence(guard),
                                 run_env=run_environment(svc, cmd.repo, cmd.pull, project, "plan", run_id),
                                 extra_args=extra_args, root=_copy_root(workdir, project),
                                 diagnose=svc.config.github.check_runs)  # annotations are the check run's
        outcome.binary = binary.label
        if outcome.ok:
            key = plan_key(project, cmd.pull, target.head_sha, run_id)
            digest = svc.plans.put(key, plan_file)
            svc.records.save_plan(PlanRecord(
                project=project_to_dict(project), pull=cmd.pull, head_sha=target.head_sha, base_sha=target.base_sha,
                plan_sha=sha,
                key=key, sha256=digest, summary=outcome.summary, changes=[list(c) for c in outcome.resource_changes],
                digest=changes_digest(outcome.plan_json), has_changes=bool(outcome.has_changes),
                run_id=run_id, user=cmd.user, engine=binary.engine, engine_version=binary.version,
                extra_args=list(extra_args),
            ))
    _save_run(svc, run_id, "plan", cmd, project, target, started, outcome.ok, outcome.summary, outcome.steps,
              binary.label, extra_args)
    return outcome, run_id


def no_fit_outcome(no_fit: NoFit) -> PlanOutcome:
    """A plan that could not start: no installed binary fits the project. Its one "step" says so, verbatim."""
    from bot.adapters.terraform import TerraformResult

    said = TerraformResult(args=[], exit_code=1, output=no_fit.message + "\n", duration=0.0)
    return PlanOutcome(ok=False, steps=[said], summary=no_fit.message, failed_step="choose the binary")


def guard_fence(guard: RunGuard | None) -> Callable[[str], None]:
    """Called before every step: a run that lost its guard stops there (another run may hold it now)."""
    def check(step: str) -> None:
        if guard is not None and guard.lost:
            log.warning("run guard %s lost: stopping before %s", guard.key, step)
            raise GuardLost(step)
    return check


# --- apply, merge, hand-over: one executor over the decision table -----------------------------------
# The run guard is taken first and only then are the lock and the saved plans read: a push, a merge or a
# second `apply` running meanwhile must be seen, not raced.


# How long a job waits for a busy project's run guard before it is deferred (seconds): long enough to ride out
# a short run finishing, short enough that a worker never sits behind another project's Terraform.
GUARD_WAIT = 3.0


def _guard(svc: WorkerServices, cmd: Command, project: Project) -> AbstractContextManager[RunGuard]:
    return svc.locks.run_guard(project, holder=cmd.id, wait=GUARD_WAIT)


def _execute(svc: WorkerServices, cmd: Command, project: Project, event: Event) -> ProjectResult:
    """Decide, act, and decide again until the decision is final (at most: acquire, plan the target, apply)."""
    with _guard(svc, cmd, project) as guard:
        fresh: tuple[PlanOutcome, str] | None = None
        target = ""
        for _ in range(4):
            lock = svc.locks.get(project)
            lock = _mark_merge_diverged(svc, cmd, project, lock)
            reviewed = svc.records.plan(project, cmd.pull)
            if reviewed is not None and pr_state(cmd) == "merged" and \
                    isinstance(unusable := plan_binary(svc, project, reviewed), str):
                # A plan file applies only with the version that made it. On an open PR the apply is refused saying
                # so (plan again); a merged PR cannot plan again, so its reviewed plan is as good as none: the
                # merged commit is planned and the PR asked to `apply` that.
                log.warning("%s %s#%d %s: %s", cmd.kind, cmd.repo, cmd.pull, project.name, unusable)
                reviewed = None
            target = target or _target_sha(svc, cmd, event, lock, reviewed)
            matches = _matches(svc, cmd, project, lock, reviewed, target)
            facts = Facts(pull=cmd.pull, pr_state=pr_state(cmd), applies=applies(cmd),
                          head_sha=cmd.head_sha, lock=LockView.of(lock), reviewed=_record_view(reviewed),
                          matches=matches, fresh=_plan_view(fresh[0], cmd) if fresh else None,
                          # Read only before a plan of the target: after one, the plan itself decides.
                          applied_matches=fresh is None and _applied_matches(svc, cmd, project, lock, target))
            decision = decide(event, facts)
            log.info("%s %s#%d %s: %s (%s)", event.value, cmd.repo, cmd.pull, project.name, decision.action.value,
                     decision.reason)
            action = decision.action
            if action in (Action.ACQUIRE, Action.QUEUE):  # taken when free, else in line: the script decides
                acquired = svc.locks.try_acquire(project, cmd.pull, cmd.info.get("author", cmd.user),
                                                 pull_title=cmd.info.get("title", ""),
                                                 pull_url=cmd.info.get("html_url", ""),
                                                 waiter={"installation": cmd.installation}, command_id=cmd.id)
                if acquired.acquired:
                    continue
                return _queued(svc, cmd, project, acquired.lock, acquired.queue_position)
            assert lock is not None  # every other action is decided only for the PR that holds the lock
            if action in (Action.PLAN_TARGET, Action.APPLY_REVIEWED, Action.APPLY_FRESH):
                start_check(svc, cmd, project)  # Terraform runs from here: in progress (once per command)
            if action is Action.PLAN_TARGET:
                fresh = run_plan(svc, cmd, project, Target(target, cmd.head_sha, ""), guard)
                if not fresh[0].ok:
                    _set_state(svc, project, cmd, lock.token, LockState.PLAN_STALE, summary=fresh[0].summary,
                               run_id=fresh[1], diverged=True, extra_args="")
                    return _failed(project, Outcome.PLAN_FAILED, fresh[0], fresh[1], cmd.head_sha,
                                   f"The plan of {target[:8]}, what `{_base(cmd)}` holds, failed, so nothing was "
                                   "applied. The lock stays with this PR; fix the cause on the default branch, then "
                                   "comment `apply` here.")
                continue
            if action in (Action.APPLY_REVIEWED, Action.APPLY_FRESH):
                plan = reviewed if action is Action.APPLY_REVIEWED else \
                    svc.records.plan_of_run(project, cmd.pull, fresh[1])  # type: ignore[index]
                assert plan is not None  # reviewed: decided on it; fresh: saved by this run just now
                return _apply(svc, cmd, project, plan, lock, decision, guard)
            if action is Action.ASK:
                assert fresh is not None
                # Merged, and what the branch holds is not applied: the lock must not be let go unnoticed.
                _set_state(svc, project, cmd, lock.token, LockState.PLAN_STALE, summary=fresh[0].summary,
                           run_id=fresh[1], diverged=True, extra_args="")
                result = _planned(project, fresh[0], fresh[1], target)
                result.outcome = Outcome.STALE
                result.message = (f"{decision.reason[0].upper()}{decision.reason[1:]} (shown below: the plan of "
                                  f"{target[:8]}, what `{_base(cmd)}` holds). Nothing was applied; the lock stays "
                                  "with this PR. Review this plan and comment `apply` here to apply it.")
                return result
            if action is Action.REPLAN:
                _replan(svc, cmd, project, decision.reason)
                return ProjectResult(project, Outcome.STALE, head_sha=cmd.head_sha, message=(
                    f"{decision.reason[0].upper()}{decision.reason[1:]}: nothing was applied. tfbot is planning the "
                    f"head now, merged into `{_base(cmd)}`; review the new plan and comment `apply` again."))
            if action is Action.RELEASE:
                _release(svc, cmd, project, lock.token, decision.reason)
                return ProjectResult(project, Outcome.NOTHING_TO_APPLY, head_sha=cmd.head_sha,
                                     summary=fresh[0].summary if fresh else "", run_id=fresh[1] if fresh else "",
                                     message=f"Nothing was applied: {decision.reason}. The lock is released.")
            if action in (Action.REFUSE, Action.KEEP_FLAGGED, Action.NOTHING, Action.KEEP):
                return ProjectResult(project, Outcome.REFUSED, head_sha=cmd.head_sha,
                                     message=f"Nothing was applied to `{project.name}`: {decision.reason}.")
            raise ValueError(f"{event.value}: no executor for {action.value}")
        raise RuntimeError(f"{event.value} of {project.name}: no final decision")


def _mark_merge_diverged(svc: WorkerServices, cmd: Command, project: Project,
                         lock: LockInfo | None) -> LockInfo | None:
    """A lock taken or held by a merged PR (into a branch tfbot applies) is diverged: the infrastructure differs from
    the default branch until the merge is applied, so if this run dies or gives up, no writer's `unlock` or close
    lets it go unnoticed. Only the flag changes (compare-and-set on the state read): the state and the run that set
    it stay, so a dead run is still recognised as its own."""
    if (lock is None or lock.pull != cmd.pull or lock.diverged or pr_state(cmd) != "merged"
            or not applies(cmd)):
        return lock
    if svc.locks.set_state(project, cmd.pull, lock.token, lock.state, diverged=True,
                           expect={"state": lock.state.value}):
        return svc.locks.get(project)
    return lock


def _target_sha(svc: WorkerServices, cmd: Command, event: Event, lock: LockInfo | None,
                reviewed: PlanRecord | None) -> str:
    """The commit that must reach the infrastructure for this event (see bot/lifecycle/decision.py)."""
    if pr_state(cmd) != "merged":
        if lock is None or lock.pull != cmd.pull or reviewed is None:
            return ""
        return merged_target(svc, cmd, cmd.head_sha).sha
    sha = str(cmd.info.get("base_head_sha") or cmd.info.get("merge_commit_sha") or "")
    if sha:
        ensure_commit(svc, cmd, sha)
    return sha


def _matches(svc: WorkerServices, cmd: Command, project: Project, lock: LockInfo | None, reviewed: PlanRecord | None,
             target: str) -> bool:
    if reviewed is None or not target or lock is None or lock.pull != cmd.pull:
        return False
    planned = reviewed.plan_sha or reviewed.head_sha
    ensure_commit(svc, cmd, planned, reviewed.head_sha, reviewed.base_sha)  # made on another host, perhaps
    if pr_state(cmd) == "merged":
        # A merge releases the lock once the plan is applied: the default branch must then hold nothing the plan did
        # not see, anywhere (bot/lifecycle/targets.py same_tree). Otherwise the target is planned, and its plan is
        # applied when it makes the same changes. An open PR's apply keeps the lock; its merge checks again.
        return same_tree(svc, cmd.repo, target, planned)
    return same_content(svc, cmd.repo, project, target, planned)


def _applied_matches(svc: WorkerServices, cmd: Command, project: Project, lock: LockInfo | None, target: str) -> bool:
    """Only for a merged PR whose lock is `applied`: whether that apply already made the infrastructure what the
    target holds (bot/lifecycle/decision.py, *applied matches*)."""
    if (lock is None or lock.pull != cmd.pull or lock.state is not LockState.APPLIED or not lock.run_id
            or not target or pr_state(cmd) != "merged"):
        return False
    applied_run = svc.records.run_meta(lock.run_id)
    return applied_run is not None and applied_holds_target(svc, cmd, project, applied_run, target)


def _apply(svc: WorkerServices, cmd: Command, project: Project, plan: PlanRecord, lock: LockInfo, decision: Decision,
           guard: RunGuard) -> ProjectResult:
    run_id = new_run_id()
    with _unfinished_apply_fails(svc, cmd, project, lock.token, run_id):
        outcome = apply_saved(svc, cmd, project, plan, lock.token, run_id, guard)
        if not outcome.ok:
            return _apply_failed(svc, cmd, project, lock.token, outcome, run_id)
        if decision.release_after:
            _release(svc, cmd, project, lock.token, f"#{cmd.pull} was applied")
            return _applied(project, outcome, run_id, cmd.head_sha, plan,
                            f"Applied: {decision.reason}. The lock is released.")
        if not svc.locks.set_state(project, cmd.pull, lock.token, LockState.APPLIED, summary=outcome.summary,
                                   run_id=run_id, command_id=cmd.id):
            return _applied(project, outcome, run_id, cmd.head_sha, plan,
                            "Applied, but the lock was taken from this PR meanwhile (an admin unlocked it).")
        return _applied(project, outcome, run_id, cmd.head_sha, plan,
                        "The lock stays with this PR until it is merged: the default branch does not have this change "
                        "yet. Closing the PR unmerged keeps the lock and says so; merge it, or merge a revert.")


@contextmanager
def _unfinished_apply_fails(svc: WorkerServices, cmd: Command, project: Project, token: int, run_id: str) -> Iterator[None]:
    """Whatever ends an apply before it records its own end (a lost guard, an exception, a signal) turns the lock
    from `applying` into `apply failed`, so `apply` can be commented again; nothing else could ever move it on.

    A compare-and-set on this run's `applying` (same holder, token, command and run): a lock this run never set
    `applying`, or already moved on, is left alone. The flag stays: the apply may have changed part of the state.
    """
    try:
        yield
    except Exception as exc:
        if _mark_unfinished(svc, cmd, project, token, run_id, exc):
            raise ApplyInterrupted(_why_stopped(exc)) from exc
        raise
    except BaseException as exc:  # a signal or an exit: recorded, and let through
        _mark_unfinished(svc, cmd, project, token, run_id, exc)
        raise


def _mark_unfinished(svc: WorkerServices, cmd: Command, project: Project, token: int, run_id: str, exc: BaseException) -> bool:
    why = _why_stopped(exc)
    marked = svc.locks.set_state(project, cmd.pull, token, LockState.APPLY_FAILED, summary=f"interrupted: {why}"[:200],
                                 expect={"state": LockState.APPLYING.value, "run_id": run_id, "command_id": cmd.id})
    if marked:
        audit.record(svc.redis, audit.AuditEntry(action="apply", repo=cmd.repo, pull=cmd.pull, project=project.name,
                                                 user=cmd.user, sha=cmd.head_sha, outcome="interrupted", detail=why,
                                                 run_id=run_id))
    return marked


def _why_stopped(exc: BaseException) -> str:
    if isinstance(exc, GuardLost):
        return f"tfbot lost the run guard before the step `{exc}`"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _queued(svc: WorkerServices, cmd: Command, project: Project, lock: LockInfo, position: int | None) -> ProjectResult:
    return ProjectResult(project, Outcome.LOCKED, head_sha=cmd.head_sha, message=(
        f"This PR was merged while #{lock.pull} holds the lock of `{project.name}`: nothing was applied yet. It "
        f"is number {position or '?'} in line; when the lock comes to it, tfbot plans what `{_base(cmd)}` holds "
        "then and asks for `apply` here (or releases the lock when there is nothing to apply)."))


def _base(cmd: Command) -> str:
    return str(cmd.info.get("base_ref") or "main")


def _record_view(plan: PlanRecord | None) -> PlanView | None:
    return None if plan is None else PlanView(head_sha=plan.head_sha, has_changes=plan.has_changes,
                                              digest=plan.digest, extra_args=bool(plan.extra_args))


def _plan_view(outcome: PlanOutcome, cmd: Command, extra_args: tuple[str, ...] = ()) -> PlanView:
    return PlanView(head_sha=cmd.head_sha, has_changes=bool(outcome.has_changes),
                    digest=changes_digest(outcome.plan_json), extra_args=bool(extra_args))


def apply_saved(svc: WorkerServices, cmd: Command, project: Project, plan: PlanRecord, token: int, run_id: str,
                guard: RunGuard | None = None) -> ApplyOutcome:
    """Apply the saved `plan` (its file checked by SHA-256; PlanRefused, or Refused when its binary is gone) with the
    apply steps of the workflow it was made with; the lock turns `applying` before the first step that may change
    the infrastructure. Saves the run and drops the applied plan. Also a drift issue's apply (bot/drift/apply.py)."""
    started = time.time()
    target = Target(plan.plan_sha or plan.head_sha, plan.head_sha, plan.base_sha)
    binary = plan_binary(svc, project, plan)
    if isinstance(binary, str):
        raise Refused(binary)
    with tempfile.TemporaryDirectory(dir=svc.tmp_dir) as tmp:
        plan_file = Path(tmp) / "plan.tfplan"
        try:
            svc.plans.get(plan.key, plan_file, plan.sha256)
        except PlanStoreError as exc:
            audit.record(svc.redis, audit.AuditEntry(action="apply", repo=cmd.repo, pull=cmd.pull, project=project.name,
                                                     user=cmd.user, sha=target.sha, outcome="refused", detail=str(exc)))
            raise PlanRefused(str(exc)) from None
        # The apply steps of the workflow the plan was made with: the reviewed plan, applied as it was planned, even
        # if the project's workflow changed since (a tfbot.yaml merged meanwhile).
        workflow = svc.workflows.get(str(plan.project.get("workflow") or project.workflow))
        if workflow is None:
            raise PlanRefused(f"the workflow {plan.project.get('workflow')!r} this plan was made with is no longer "
                              "configured; comment `plan` to plan it again")
        workdir = _working_dir(svc, cmd, project, target)
        outcome = run_apply_steps(adapter(svc, binary), workflow, workdir, project.workspace, plan_file,
                                  before_step=_apply_fence(svc, cmd, project, token, run_id, guard),
                                  run_env=run_environment(svc, cmd.repo, cmd.pull, project, "apply", run_id),
                                  root=_copy_root(workdir, project))
        outcome.binary = binary.label
    # The run and its audit entry first: they say what happened to the infrastructure, whatever fails next.
    _save_run(svc, run_id, "apply", cmd, project, target, started, outcome.ok, outcome.summary, outcome.steps,
              binary.label, tuple(plan.extra_args))
    if outcome.ok:
        svc.records.delete_plan(project, cmd.pull, plan.run_id)
        try:
            svc.plans.delete(plan.key)
        except Exception as exc:  # noqa: BLE001 - an applied plan file left behind cannot be applied twice
            log.warning("could not delete the applied plan file %s: %s", plan.key, exc)
    return outcome


# Steps of the apply pipeline that cannot change the infrastructure. Any other step may: `apply`, and a custom
# `run` step, which can run anything with the plan file at hand.
_HARMLESS_APPLY_STEPS = frozenset({"init", "workspace"})


def _apply_fence(svc: WorkerServices, cmd: Command, project: Project, token: int, run_id: str,
                 guard: RunGuard | None) -> Callable[[str], None]:
    """Before every step: the guard check; then, before the first step that may change the infrastructure, the lock
    turns `applying` and flagged. Not earlier: a run stopped during `init` changed nothing, and its lock stays as it
    was (planned), so `apply` works again at once. Not later: the flag must be set whenever an apply may have run."""
    fence = guard_fence(guard)
    marked = False

    def before(step: str) -> None:
        nonlocal marked
        fence(step)
        if not marked and step.split(" ", 1)[0] not in _HARMLESS_APPLY_STEPS:
            # From here on the infrastructure may hold what the default branch lacks, until the merge is applied.
            _set_state(svc, project, cmd, token, LockState.APPLYING, run_id=run_id, diverged=True)
            marked = True
    return before


def _apply_failed(svc: WorkerServices, cmd: Command, project: Project, token: int, outcome: ApplyOutcome,
                  run_id: str) -> ProjectResult:
    # Flagged only if the fence marked the lock `applying` for this run: a step that may change the infrastructure
    # started. A failure before it (`init`, `workspace`) changed nothing, and the lock stays as it was (planned).
    flagged = svc.locks.set_state(project, cmd.pull, token, LockState.APPLY_FAILED, summary=outcome.summary,
                                  run_id=run_id, command_id=cmd.id,
                                  expect={"state": LockState.APPLYING.value, "run_id": run_id, "command_id": cmd.id})
    if not flagged:
        step = outcome.failed_step or "init"
        return _failed(project, Outcome.APPLY_FAILED, outcome, run_id, cmd.head_sha,
                       f"The apply did not start: the step `{step}` failed before any step that can change the "
                       "infrastructure, so nothing was changed. The lock is as it was; fix the cause and comment "
                       "`apply` again.")
    # The apply ran: its failure is reported even if the lock was taken from this PR meanwhile.
    return _failed(project, Outcome.APPLY_FAILED, outcome, run_id, cmd.head_sha,
                   "The lock stays with this PR, so nobody else plans on a half-applied state. Fix the cause "
                   "(push a fix and merge it, or fix it outside), then comment `apply` here. Closing the PR or a "
                   "writer's `unlock` does not release it; an admin can, with a reason, from the lock page.")


def _release(svc: WorkerServices, cmd: Command, project: Project, token: int, reason: str, mode: str = "owner") -> bool:
    from bot.lifecycle.handover import release_and_hand_over

    return release_and_hand_over(svc, project, cmd.pull, token, reason=f"#{cmd.pull}: {reason}", mode=mode,
                                 command_id=cmd.id if mode == "taken" else "")


# --- helpers ----------------------------------------------------------------------------------------


def changes_digest(plan_json: dict[str, Any] | None) -> str:
    """A hash of every planned change with its values, so two plans compare equal only if they do the same.

    Output changes count: applying a plan writes its output values to the state, where other projects and
    tools read them, so a plan that sets another value is not the reviewed plan. Empty when Terraform's JSON
    was too large to keep: such plans never count as equal.
    """
    import hashlib
    import json

    if not plan_json:
        return ""
    resources = sorted(
        (rc.get("address", ""), json.dumps(rc.get("change", {}), sort_keys=True))
        for rc in plan_json.get("resource_changes", []) if rc.get("change", {}).get("actions") != ["no-op"]
    )
    outputs = sorted(
        (name, json.dumps(change, sort_keys=True))
        for name, change in (plan_json.get("output_changes") or {}).items() if change.get("actions") != ["no-op"]
    )
    return hashlib.sha256(json.dumps({"resources": resources, "outputs": outputs}).encode()).hexdigest()


def _set_state(svc: WorkerServices, project: Project, cmd: Command, token: int, state: LockState,
               **fields: str | bool) -> None:
    """Record the lock's new state, set by this command's run; LockLost if this PR no longer holds it under `token`
    (fencing)."""
    # `fields` are lock fields (summary, run_id, ...), never `expect`: mypy cannot tell the two apart.
    if not svc.locks.set_state(project, cmd.pull, token, state, command_id=cmd.id, **fields):  # type: ignore[arg-type]
        raise LockLost()


def _check_current(svc: WorkerServices, cmd: Command) -> None:
    """A plan for an older head is dropped: a newer push has queued its own."""
    if cmd.kind == "plan":
        head = svc.records.head(cmd.repo, cmd.pull)
        if head and head != cmd.head_sha:
            log.info("plan of %s#%d at %s superseded by %s", cmd.repo, cmd.pull, cmd.head_sha[:8], head[:8])
            raise Superseded()


def _copy_root(workdir: Path, project: Project) -> Path:
    """The working copy `workdir` (the project's directory inside it) belongs to."""
    depth = 0 if project.dir == "." else len(Path(project.dir).parts)
    return workdir.parents[depth - 1] if depth else workdir


def _working_dir(svc: WorkerServices, cmd: Command, project: Project, target: Target) -> Path:
    ensure_commit(svc, cmd, target.sha, target.head_sha, target.base_sha)
    copy = svc.checkouts.working_copy(cmd.repo, cmd.pull, project_slug(project), target.sha)
    return copy / project.dir if project.dir != "." else copy


def _pull_is_open(svc: WorkerServices, cmd: Command) -> bool:
    """Whether the PR is open, asking GitHub only when the closed handler marked it closed (PR_CLOSED).

    Without the mark, GitHub's answer could only matter for a close whose event is not handled yet: that handler
    releases whatever this run takes (it marks, then releases; this run takes, then checks the mark), and
    reconciliation releases the locks of PRs whose close was never delivered. The mark alone is not trusted: a
    reopen may have passed it by, so GitHub has the last word."""
    if not svc.records.pull_field(cmd.repo, cmd.pull, PR_CLOSED):
        return True
    return bool(svc.github.repo(cmd.installation, cmd.repo).pull(cmd.pull).state == "open")


def _replan(svc: WorkerServices, cmd: Command, project: Project, why: str) -> None:
    """Queue a fresh plan of one project of the PR, on its head merged into its base."""
    svc.jobs.replan(project, cmd.pull, cmd.installation, why)


def project_slug(project: Project) -> str:
    """A file-system-safe, unique name for a project's working copy."""
    import hashlib

    readable = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{project.dir}_{project.workspace}")[:60]
    return f"{readable}-{hashlib.sha256(project.id.encode()).hexdigest()[:8]}"


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:8]


def _save_run(svc: WorkerServices, run_id: str, kind: str, cmd: Command, project: Project, target: Target,
              started: float, ok: bool, summary: str, steps: list[TerraformResult], binary: str = "",
              extra_args: tuple[str, ...] = ()) -> None:
    # `sha` is the commit people know (the PR's head, or main's); `planned_sha` the one tfbot checked out.
    sha = target.head_sha
    output = "\n".join((f"$ {s.command}\n" if s.command else "") + s.output for s in steps)
    svc.records.save_run(run_id, {
        "id": run_id, "kind": kind, "repo": cmd.repo, "pull": cmd.pull, "project": project.name, "dir": project.dir,
        "workspace": project.workspace, "sha": sha, "planned_sha": target.sha, "base_sha": target.base_sha,
        "user": cmd.user, "started_at": started, "duration": time.time() - started, "ok": ok, "summary": summary,
        "command_id": cmd.id, "binary": binary, "extra_args": public(extra_args),
        # Seconds per step, in order (0 for a step tfbot found nothing to do for): where a run's time went.
        "steps": [[s.command, round(s.duration, 3)] for s in steps],
        # An `apply` on a drift issue runs under the number, which is no pull request.
        "pull_kind": "drift" if cmd.kind == "drift-apply" else "pull",
    }, output)
    # The arguments first: `tfbot audit` cuts a long detail, and what the plan was made with matters most.
    detail = f"planned with {shown(public(extra_args))}: {summary}" if extra_args else summary
    audit.record(svc.redis, audit.AuditEntry(
        action=kind, repo=cmd.repo, pull=cmd.pull, project=project.name, user=cmd.user, sha=sha,
        outcome="ok" if ok else "failed", detail=detail, run_id=run_id, at=started))
    log.info("%s %s#%d %s at %s: %s (run %s)", kind, cmd.repo, cmd.pull, project.name, sha[:8],
             summary or ("ok" if ok else "failed"), run_id)


def _planned(project: Project, outcome: PlanOutcome, run_id: str, sha: str,
             extra_args: tuple[str, ...] = ()) -> ProjectResult:
    return ProjectResult(
        project, Outcome.PLANNED, summary=outcome.summary,
        changes=[ResourceChange(a, addr) for a, addr in outcome.resource_changes],
        output=outcome.plan_output, run_id=run_id, head_sha=sha, has_changes=bool(outcome.has_changes),
        binary=outcome.binary, extra_args=list(extra_args),
    )


def _applied(project: Project, outcome: ApplyOutcome, run_id: str, sha: str, plan: PlanRecord,
             message: str) -> ProjectResult:
    return ProjectResult(project, Outcome.APPLIED, summary=outcome.summary, output=outcome.apply_output,
                         run_id=run_id, head_sha=sha, message=message, binary=outcome.binary,
                         extra_args=list(plan.extra_args))


def could_not_start(cmd: Command, project: Project, why: str) -> ProjectResult:
    """A job that waited for a busy project longer than any run may last and gave up: it ran nothing and changed
    nothing, so it is not an interrupted run (the run keeping the project busy goes on, and reports itself)."""
    verb = "plan" if cmd.kind == "plan" else "apply"
    return ProjectResult(project, Outcome.ERROR, head_sha=cmd.head_sha, summary="could not start: project busy",
                         message=(f"The {verb} of `{project.name}` could not start: the project stayed busy with "
                                  f"another run for longer than tfbot waits ({why}). Nothing was run, and the lock is "
                                  f"as that run leaves it. Comment `{verb}` to try again once it has ended."))


def _failed(project: Project, kind: Outcome, outcome: PlanOutcome | ApplyOutcome, run_id: str, sha: str,
            message: str, extra_args: tuple[str, ...] = ()) -> ProjectResult:
    failed = outcome.steps[-1] if outcome.steps else None
    return ProjectResult(project, kind, summary=outcome.summary, output=failed.output if failed else "",
                         run_id=run_id, head_sha=sha, message=message, binary=outcome.binary,
                         extra_args=list(extra_args),
                         diagnostics=outcome.diagnostics if isinstance(outcome, PlanOutcome) else [])


def locked_message(project: Project, lock: LockInfo, position: int | None) -> str:
    """Who holds the lock, since when, how it will be released, and this PR's place in line."""
    since = datetime.fromtimestamp(lock.locked_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    place = f" This PR is number {position} in line" if position else " This PR is in line"
    if lock.kind == "drift":  # an `apply` commented on a drift issue: held for that one run (bot/drift/apply.py)
        return (f"`{project.name}` (dir `{project.dir}`, workspace `{project.workspace}`) is locked by drift issue "
                f"#{lock.pull} (@{lock.user}'s `apply` of the default branch) since {since}, state: "
                f"{lock.state.value}. The lock is released when that apply ends.{place}: tfbot plans it "
                "automatically when the lock is released.")
    return (
        f"`{project.name}` (dir `{project.dir}`, workspace `{project.workspace}`) is locked by #{lock.pull} "
        f"(@{lock.user}) since {since}, state: {lock.state.value}. The lock is released when #{lock.pull} is "
        f"merged and applied, or closed, or someone with write access comments `unlock` on #{lock.pull}."
        f"{place}: tfbot plans it automatically when the lock is released."
    )
