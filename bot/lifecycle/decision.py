"""What to do with one project's workspace lock and saved plans when something happens to its PR. Pure.

`decide(event, facts)` looks only at values (the lock as it stands, the plan shown on the PR, a plan made
by this very run, the PR's state) and returns a `Decision`; it reads nothing and changes nothing. The
executor (bot/lifecycle/runner.py, bot/lifecycle/handover.py) gathers the facts under the project's run guard, carries the
decision out, and when the decision asks for a plan of the target commit (`PLAN_TARGET`), makes that
plan and asks again with it as `facts.fresh`.

Words: *mine* = this PR holds the lock; *reviewed* = the newest plan of this PR that was shown on it
(a newer plan still running does not count until it is posted); *target* = the commit that must reach the
infrastructure: the PR merged into its base (apply on an open PR), the merge commit (merge), or the base
branch's tip (`apply` on a merged PR, a lock handed to a merged PR); *matches* = the reviewed plan's
commit holds the same project (its dir and the local modules it calls) as the target, and once the PR is merged,
the same files everywhere (a root may read any file; the lock is released after such an apply); *flagged* = the
infrastructure and the default branch differ because of this PR (`LockView.diverged`): its apply ran (or
started) and the branch does not hold it yet, or it was merged and the branch's plan is not applied yet.
*applied matches* = the lock is `applied` by a whole plan (no extra arguments) of a commit whose files are all the
target's (the whole tree: a root may read any file): what the apply made of the infrastructure is what the target
would make of it, so planning the target again would only spend a Terraform run to find no changes.
A PR *applies* when its base is the default branch or one of the repository's `apply_branches`.

| event \\ lock | free / other PR's | mine: planning, planned, plan failed, plan stale | mine: applying | mine: applied | mine, flagged (after an apply) |
|---|---|---|---|---|---|
| plan (open PR) | PLAN: take it, or join the line | PLAN (reviewed plan kept until the new one is posted) | REFUSE: apply running | PLAN | PLAN (flag kept) |
| plan, base does not apply | PLAN_UNLOCKED | PLAN_UNLOCKED (the lock is let go first) | PLAN_UNLOCKED (lock kept: running) | PLAN_UNLOCKED (lock kept, flagged) | PLAN_UNLOCKED (lock kept, flagged) |
| plan made, no changes | - | RELEASE (nothing to hold others for); KEEP when made with extra arguments (`-target` and the like say nothing about the whole PR) | - | - | KEEP (flag: main lacks the apply) |
| plan on a closed / merged PR | REFUSE | REFUSE | REFUSE | REFUSE | REFUSE |
| apply (open PR) | REFUSE: not held | APPLY_REVIEWED, keep lock (applied, awaiting merge); REFUSE without a reviewed plan; REPLAN when the head moved or the target does not match | REFUSE: running | REFUSE: merge it | as mine |
| apply, base does not apply | REFUSE | REFUSE | REFUSE | REFUSE | REFUSE |
| apply on a draft (not allowed) | REFUSE (checked before; see handlers) | | | | |
| merge, or apply on a merged PR, or handed to a merged PR | free: ACQUIRE; other's: QUEUE (told; planned when it comes) | APPLY_REVIEWED + release when the reviewed plan is of the final head (merge), matches and was made without extra arguments; else PLAN_TARGET | PLAN_TARGET (the apply died) | RELEASE when *applied matches* (nothing left to apply, so no plan); else PLAN_TARGET | PLAN_TARGET |
| ... with a fresh plan of the target | | no changes: RELEASE; same changes and values as reviewed (digest): APPLY_FRESH + release; else ASK (keep lock, show the plan, ask for `apply`) | as left | no changes: RELEASE; else ASK | as left |
| merge into a branch that does not apply | NOTHING | RELEASE | RELEASE | RELEASE | KEEP_FLAGGED |
| close unmerged | NOTHING (leaves the line) | RELEASE (plans dropped, next in line planned) | KEEP_FLAGGED | KEEP_FLAGGED | KEEP_FLAGGED |
| unlock by a writer | REFUSE: not held | RELEASE | REFUSE: running | REFUSE: flagged | REFUSE: flagged |
| unlock by an admin with a reason | REFUSE: not held | RELEASE | REFUSE while the run lives; RELEASE once it is dead | RELEASE (audited) | RELEASE (audited) |
| ... while a run holds the run guard | REFUSE: not held | REFUSE: a run is going | REFUSE: a run is going | REFUSE: a run is going | REFUSE: a run is going |
| handed over (open PR) | - | PLAN | - | - | - |
| handed over (closed PR) | - | RELEASE (to the next in line) | - | - | - |
| handed over (open PR, base does not apply) | - | RELEASE (to the next in line) | - | - | - |
| worker died during a run that set the lock's state | - | planning: MARK_FAILED | MARK_FAILED (flag kept) | - | - |
| worker died during (or gave up before) any other run of the PR | - | NOTHING | NOTHING | NOTHING | NOTHING |
| run guard lost, or the run fails inside tfbot | the run stops before its next step (executor; no decision needed) | nothing applied: state kept | after the apply step began: APPLY_FAILED (flag kept; the executor's compare-and-set on its own run) | - | - |
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

from bot.models import LockInfo, LockState


class Event(str, Enum):
    """What happened to one project of a PR."""

    PLAN = "plan"  # autoplan (open, push, reopen, ready), a `plan` comment, a re-plan
    APPLY = "apply"  # `apply` comment (or the Apply button) on a PR
    MERGE = "merge"  # the PR was merged
    APPLY_MERGED = "apply merged"  # `apply` on a merged PR, or the lock handed to a merged PR
    HANDOVER = "handover"  # the lock came to this PR from the waiting line
    CLOSE = "close"  # closed without merging
    UNLOCK = "unlock"  # a writer's `unlock`
    FORCE_UNLOCK = "force unlock"  # an admin's unlock with a reason (lock page, `tfbot unlock`)
    WORKER_DIED = "worker died"  # the run's worker is confirmed dead


class Action(str, Enum):
    """What the executor does; see the module docstring for when."""

    PLAN = "plan"  # take the lock (or join its line) and plan the PR as merged into its base
    PLAN_UNLOCKED = "plan without lock"  # PR into a branch that does not apply: plan, take no lock
    APPLY_REVIEWED = "apply reviewed"  # apply the reviewed plan file as it is
    PLAN_TARGET = "plan target"  # plan the target commit, then decide again with `fresh`
    APPLY_FRESH = "apply fresh"  # apply the plan just made of the target (its changes equal the reviewed ones)
    ASK = "ask"  # keep the lock (plan stale), show the fresh plan, ask for `apply`
    REPLAN = "replan"  # nothing applied: queue a plan of the PR's head and say why
    ACQUIRE = "acquire"  # take the free lock, then decide again
    QUEUE = "queue"  # join the waiting line of another PR's lock; say so
    RELEASE = "release"  # release the lock (drop this PR's plans) and hand it to the next in line
    KEEP = "keep"  # nothing to change
    KEEP_FLAGGED = "keep flagged"  # keep the lock held; tell this PR and the next in line why
    MARK_FAILED = "mark failed"  # record the run as failed (apply failed keeps the flag)
    REFUSE = "refuse"  # change nothing; tell the user why
    NOTHING = "nothing"  # change nothing; nothing to say


@dataclass(frozen=True)
class LockView:
    """The lock of the project as read under the run guard."""

    pull: int
    state: LockState
    diverged: bool = False  # the infrastructure and the default branch differ because of this PR
    set_by: str = ""  # the command whose run set the state ("" when tfbot set it by itself, e.g. a hand-over)

    @classmethod
    def of(cls, lock: LockInfo | None) -> LockView | None:
        """The view of a lock read from the store, or None when the workspace is free."""
        if lock is None:
            return None
        return cls(pull=lock.pull, state=lock.state, diverged=lock.diverged, set_by=lock.command_id)


@dataclass(frozen=True)
class PlanView:
    """A saved plan: the PR head it was made for, whether it changes anything, its changes digest, and whether a
    comment's extra arguments (`plan -- -target=...`) shaped it."""

    head_sha: str
    has_changes: bool
    digest: str = ""  # hash of every change with its values; "" never equals anything
    # Made with extra arguments: `apply` on the open PR applies it as reviewed, but it is never what the default
    # branch holds as such (a -target plan leaves changes out, a -destroy plan removes what the branch keeps).
    extra_args: bool = False


PullState = Literal["open", "closed", "merged"]


@dataclass(frozen=True)
class Facts:
    """Everything a decision may look at, for one project of one PR."""

    pull: int
    pr_state: PullState
    applies: bool  # the base (or, once merged, the branch merged into) applies
    head_sha: str  # the PR's head now; its final head once merged
    lock: LockView | None = None
    reviewed: PlanView | None = None
    matches: bool = False  # the reviewed plan's commit holds the same project as the target
    applied_matches: bool = False  # the lock's apply was of a whole plan of a commit with the target's files
    fresh: PlanView | None = None  # a plan of the target made by this run
    run_alive: bool = False  # a run of this project is still going (its guard is held by a live worker)
    command: str = ""  # the command this event is about (worker died: the command of the run that died)


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""  # for people: why (one sentence, no trailing period)
    release_after: bool = False  # APPLY_*: release the lock after a successful apply (the default branch has it)


_RUNNING = "an apply of this project is running; wait for it to end"
_RUN_GOING = "a run of this project is going (it holds the project's run guard); unlock it once that run has ended"
_FLAGGED = ("the infrastructure and the default branch differ because of this PR (it applied what the branch "
            "lacks, or it was merged and the branch's plan is not applied yet): apply the branch here with `apply`, "
            "or merge and apply a revert; an admin can unlock it with a reason from the lock page or `tfbot unlock`")


def decide(event: Event, facts: Facts) -> Decision:
    """The one decision for `event` given `facts` (see the table in the module docstring)."""
    lock = facts.lock
    mine = lock is not None and lock.pull == facts.pull
    if event is Event.PLAN:
        return _plan(facts, mine)
    if event is Event.APPLY:
        if facts.pr_state == "merged":
            return decide(Event.APPLY_MERGED, facts)
        return _apply(facts, mine)
    if event in (Event.MERGE, Event.APPLY_MERGED):
        return _merged(event, facts, mine)
    if event is Event.HANDOVER:
        if facts.pr_state == "merged":
            return _merged(Event.APPLY_MERGED, facts, mine)
        if facts.pr_state == "closed":
            return Decision(Action.RELEASE, "the PR was closed while it waited")
        if not facts.applies:
            # Retargeted while it waited: a PR into such a branch takes no lock, so it must not keep one handed to it.
            return Decision(Action.RELEASE, "the PR's base branch is not one that tfbot applies, so it takes no lock")
        return Decision(Action.PLAN, "the lock was handed to this PR")
    if event is Event.CLOSE:
        if not mine:
            return Decision(Action.NOTHING)
        if _flagged(lock):
            return Decision(Action.KEEP_FLAGGED, _FLAGGED)
        return Decision(Action.RELEASE, "the PR was closed without merging")
    if event in (Event.UNLOCK, Event.FORCE_UNLOCK):
        return _unlock(event, facts)
    if event is Event.WORKER_DIED:
        # Only the run that set the state ends it: a job of the same PR that never started (it gave up waiting
        # for the run guard) or ran something else says nothing about the apply that is running.
        set_by_it = lock is not None and facts.command != "" and lock.set_by == facts.command
        if mine and set_by_it and lock is not None and lock.state in (LockState.APPLYING, LockState.PLANNING):
            return Decision(Action.MARK_FAILED, "the worker running it died")
        return Decision(Action.NOTHING)
    raise ValueError(f"unknown event {event!r}")


def _flagged(lock: LockView | None) -> bool:
    return lock is not None and (lock.diverged or lock.state in (
        LockState.APPLYING, LockState.APPLIED, LockState.APPLY_FAILED))


def _plan(facts: Facts, mine: bool) -> Decision:
    if facts.pr_state != "open":
        return Decision(Action.REFUSE, f"the PR is {facts.pr_state}: there is nothing to plan")
    if not facts.applies:
        return Decision(Action.PLAN_UNLOCKED, "the PR's base branch is not one that tfbot applies")
    if facts.fresh is not None:  # the plan was made and the lock is ours
        if not facts.fresh.has_changes and mine and not _flagged(facts.lock) and not facts.fresh.extra_args:
            return Decision(Action.RELEASE, "the plan has no changes, so the lock is not kept from others")
        return Decision(Action.KEEP)
    if mine and facts.lock is not None and facts.lock.state is LockState.APPLYING:
        return Decision(Action.REFUSE, _RUNNING)
    return Decision(Action.PLAN)


def _apply(facts: Facts, mine: bool) -> Decision:
    lock = facts.lock
    if facts.pr_state != "open":
        return Decision(Action.REFUSE, "the PR was closed without merging: nothing of it is applied")
    if not facts.applies:
        return Decision(Action.REFUSE, "the PR's base branch is not one that tfbot applies: merge it there, and "
                                       "apply the PR that brings it to the default branch")
    if not mine or lock is None:
        holder = f"#{lock.pull}" if lock is not None else "nobody"
        return Decision(Action.REFUSE, f"this PR does not hold the lock (held by {holder}): comment `plan` first")
    if lock.state is LockState.APPLYING:
        return Decision(Action.REFUSE, _RUNNING)
    if lock.state is LockState.APPLIED:
        return Decision(Action.REFUSE, "this PR was already applied; merge it to release the lock")
    if facts.reviewed is None:
        return Decision(Action.REFUSE, "there is no plan shown on this PR to apply: comment `plan` first")
    if facts.reviewed.head_sha != facts.head_sha:
        return Decision(Action.REPLAN, "the PR's head moved since the plan")
    if not facts.matches:
        return Decision(Action.REPLAN, "the base branch changed this project since the plan")
    return Decision(Action.APPLY_REVIEWED, "the reviewed plan still describes the PR as it will merge")


def _merged(event: Event, facts: Facts, mine: bool) -> Decision:
    lock = facts.lock
    if facts.pr_state != "merged":
        return Decision(Action.REFUSE, f"the PR is {facts.pr_state}, not merged")
    if not facts.applies:
        if not mine:
            return Decision(Action.NOTHING, "merged into a branch that tfbot does not apply")
        if _flagged(lock):
            return Decision(Action.KEEP_FLAGGED, _FLAGGED)
        return Decision(Action.RELEASE, "merged into a branch that tfbot does not apply: nothing is applied")
    if not mine or lock is None:
        if lock is None:
            return Decision(Action.ACQUIRE, "merged without holding the lock")
        return Decision(Action.QUEUE, f"merged while #{lock.pull} holds the lock")
    applied_already = lock.state is LockState.APPLIED
    reviewed = facts.reviewed
    if facts.fresh is None:
        if applied_already and facts.applied_matches:
            return Decision(Action.RELEASE, "the infrastructure already matches the default branch: its files are "
                                            "exactly those this PR's apply was planned from")
        final = reviewed is not None and (event is Event.APPLY_MERGED or reviewed.head_sha == facts.head_sha)
        if reviewed is not None and reviewed.extra_args:
            return Decision(Action.PLAN_TARGET, "the reviewed plan was made with extra arguments, so it is not what "
                                                "the default branch holds")
        if final and facts.matches and not applied_already and lock.state is not LockState.APPLYING:
            return Decision(Action.APPLY_REVIEWED, "the reviewed plan is what the default branch holds",
                            release_after=True)
        return Decision(Action.PLAN_TARGET, "the reviewed plan is not exactly what the default branch holds")
    if not facts.fresh.has_changes:
        return Decision(Action.RELEASE, "the infrastructure already matches the default branch: nothing to apply")
    same = (reviewed is not None and reviewed.head_sha == facts.head_sha and reviewed.digest != ""
            and reviewed.digest == facts.fresh.digest)
    if same and not applied_already:
        return Decision(Action.APPLY_FRESH, "the plan of the default branch makes exactly the reviewed changes",
                        release_after=True)
    if applied_already:  # its applied plan is gone: "no plan shown" would hide that it applied part of the branch
        why = "the default branch holds more than what this PR applied"
    elif reviewed is None or (event is Event.MERGE and reviewed.head_sha != facts.head_sha):
        why = "no plan of this PR's final head was shown on it"
    elif reviewed.extra_args:
        why = "the reviewed plan was made with extra arguments, and the plan of the default branch without them " \
              "differs from it"
    else:
        why = "the plan of the default branch differs from the reviewed plan"
    return Decision(Action.ASK, why)


def _unlock(event: Event, facts: Facts) -> Decision:
    lock = facts.lock
    if lock is None or lock.pull != facts.pull:
        return Decision(Action.REFUSE, "this PR holds no such lock")
    if facts.run_alive:
        # Whatever the state says: a run holding the guard may be applying (or about to), and states can be wrong.
        return Decision(Action.REFUSE, _RUN_GOING)
    if lock.state is LockState.APPLYING and event is Event.UNLOCK:
        return Decision(Action.REFUSE, _RUNNING)
    if event is Event.UNLOCK and _flagged(lock):
        return Decision(Action.REFUSE, _FLAGGED)
    return Decision(Action.RELEASE, "unlocked")
