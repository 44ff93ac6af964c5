"""Every cell of the lifecycle table in bot/lifecycle/decision.py, as values in and a decision out (milliseconds)."""
from __future__ import annotations

import pytest

from bot.lifecycle.decision import Action, Event, Facts, LockView, PlanView, decide
from bot.models import LockState as S

pytestmark = pytest.mark.unit

ME, OTHER = 7, 8
HEAD, OLD = "h" * 40, "o" * 40
REVIEWED = PlanView(head_sha=HEAD, has_changes=True, digest="d1")
SAME_FRESH = PlanView(head_sha=HEAD, has_changes=True, digest="d1")
OTHER_FRESH = PlanView(head_sha=HEAD, has_changes=True, digest="d2")
EMPTY_FRESH = PlanView(head_sha=HEAD, has_changes=False, digest="d0")
# Made with a comment's extra arguments (`plan -- -target=...`).
EXTRA = PlanView(head_sha=HEAD, has_changes=True, digest="d1", extra_args=True)
EXTRA_EMPTY = PlanView(head_sha=HEAD, has_changes=False, digest="d0", extra_args=True)
HELD_STATES = [S.PLANNING, S.PLANNED, S.PLAN_FAILED, S.PLAN_STALE]


RUN, OTHER_RUN = "cmd-of-the-run", "cmd-of-another-run"


def mine(state: S = S.PLANNED, flagged: bool = False, set_by: str = RUN) -> LockView:
    return LockView(pull=ME, state=state, diverged=flagged, set_by=set_by)


def theirs(state: S = S.PLANNED) -> LockView:
    return LockView(pull=OTHER, state=state)


def facts(pr: str = "open", applies: bool = True, lock: LockView | None = None, reviewed: PlanView | None = None,
          matches: bool = False, fresh: PlanView | None = None, run_alive: bool = False,
          head: str = HEAD, command: str = RUN, applied_matches: bool = False) -> Facts:
    return Facts(pull=ME, pr_state=pr, applies=applies, head_sha=head, lock=lock, reviewed=reviewed,  # type: ignore[arg-type]
                 matches=matches, fresh=fresh, run_alive=run_alive, command=command, applied_matches=applied_matches)


# (id, event, facts, expected action, expected release_after)
CASES = [
    # --- plan ---
    ("plan free", Event.PLAN, facts(), Action.PLAN, False),
    ("plan held by other: join the line", Event.PLAN, facts(lock=theirs()), Action.PLAN, False),
    *[(f"plan mine {s.value}", Event.PLAN, facts(lock=mine(s)), Action.PLAN, False) for s in HELD_STATES],
    ("plan mine applying", Event.PLAN, facts(lock=mine(S.APPLYING, True)), Action.REFUSE, False),
    ("plan mine applied", Event.PLAN, facts(lock=mine(S.APPLIED, True)), Action.PLAN, False),
    ("plan mine apply failed", Event.PLAN, facts(lock=mine(S.APPLY_FAILED, True)), Action.PLAN, False),
    ("plan into other branch", Event.PLAN, facts(applies=False), Action.PLAN_UNLOCKED, False),
    ("plan into other branch, lock held", Event.PLAN, facts(applies=False, lock=mine()), Action.PLAN_UNLOCKED, False),
    ("plan closed PR", Event.PLAN, facts(pr="closed"), Action.REFUSE, False),
    ("plan merged PR", Event.PLAN, facts(pr="merged", lock=mine()), Action.REFUSE, False),
    ("plan made, no changes: release", Event.PLAN, facts(lock=mine(), fresh=EMPTY_FRESH), Action.RELEASE, False),
    ("plan made, no changes, flagged: keep", Event.PLAN, facts(lock=mine(S.PLANNED, True), fresh=EMPTY_FRESH),
     Action.KEEP, False),
    ("plan made, changes: keep", Event.PLAN, facts(lock=mine(), fresh=OTHER_FRESH), Action.KEEP, False),
    ("plan made with extra arguments, no changes: keep (it says nothing about the whole PR)", Event.PLAN,
     facts(lock=mine(), fresh=EXTRA_EMPTY), Action.KEEP, False),
    # --- apply on an open PR ---
    ("apply not held", Event.APPLY, facts(lock=theirs(), reviewed=REVIEWED, matches=True), Action.REFUSE, False),
    ("apply free", Event.APPLY, facts(reviewed=REVIEWED, matches=True), Action.REFUSE, False),
    ("apply reviewed", Event.APPLY, facts(lock=mine(), reviewed=REVIEWED, matches=True), Action.APPLY_REVIEWED,
     False),
    ("apply after a failed apply", Event.APPLY, facts(lock=mine(S.APPLY_FAILED, True), reviewed=REVIEWED,
                                                        matches=True), Action.APPLY_REVIEWED, False),
    ("apply again after a new plan", Event.APPLY, facts(lock=mine(S.PLANNED, True), reviewed=REVIEWED, matches=True),
     Action.APPLY_REVIEWED, False),
    ("apply without a shown plan", Event.APPLY, facts(lock=mine()), Action.REFUSE, False),
    ("apply, head moved", Event.APPLY, facts(lock=mine(), reviewed=REVIEWED, matches=True, head=OLD), Action.REPLAN,
     False),
    ("apply, base changed the project", Event.APPLY, facts(lock=mine(), reviewed=REVIEWED, matches=False),
     Action.REPLAN, False),
    ("apply while applying", Event.APPLY, facts(lock=mine(S.APPLYING, True), reviewed=REVIEWED, matches=True),
     Action.REFUSE, False),
    ("apply when applied", Event.APPLY, facts(lock=mine(S.APPLIED, True), reviewed=REVIEWED, matches=True),
     Action.REFUSE, False),
    ("apply into other branch", Event.APPLY, facts(applies=False, lock=mine(), reviewed=REVIEWED, matches=True),
     Action.REFUSE, False),
    ("apply on a closed PR", Event.APPLY, facts(pr="closed", lock=mine(), reviewed=REVIEWED, matches=True),
     Action.REFUSE, False),
    ("apply on a merged PR goes the merged way", Event.APPLY,
     facts(pr="merged", lock=mine(), reviewed=REVIEWED, matches=True), Action.APPLY_REVIEWED, True),
    # --- merge ---
    ("merge, reviewed final head matches", Event.MERGE, facts(pr="merged", lock=mine(), reviewed=REVIEWED,
                                                               matches=True), Action.APPLY_REVIEWED, True),
    ("merge, reviewed of an older head", Event.MERGE, facts(pr="merged", lock=mine(), reviewed=REVIEWED,
                                                             matches=True, head=OLD), Action.PLAN_TARGET, False),
    ("merge, reviewed does not match", Event.MERGE, facts(pr="merged", lock=mine(), reviewed=REVIEWED),
     Action.PLAN_TARGET, False),
    ("merge, nothing reviewed", Event.MERGE, facts(pr="merged", lock=mine()), Action.PLAN_TARGET, False),
    ("merge, applied before", Event.MERGE, facts(pr="merged", lock=mine(S.APPLIED, True), reviewed=REVIEWED,
                                                 matches=True), Action.PLAN_TARGET, False),
    ("merge, applied from a commit holding the merged project", Event.MERGE,
     facts(pr="merged", lock=mine(S.APPLIED, True), applied_matches=True), Action.RELEASE, False),
    ("apply on a merged PR, applied from a commit holding the branch's project", Event.APPLY_MERGED,
     facts(pr="merged", lock=mine(S.APPLIED, True), applied_matches=True), Action.RELEASE, False),
    # applied_matches is only ever true of an `applied` lock; the others never skip their plan of the target.
    ("merge, apply died, applied_matches ignored", Event.MERGE,
     facts(pr="merged", lock=mine(S.APPLYING, True), applied_matches=True), Action.PLAN_TARGET, False),
    ("merge, apply failed, applied_matches ignored", Event.MERGE,
     facts(pr="merged", lock=mine(S.APPLY_FAILED, True), applied_matches=True), Action.PLAN_TARGET, False),
    ("merge, applied, then a fresh plan with changes", Event.MERGE,
     facts(pr="merged", lock=mine(S.APPLIED, True), applied_matches=True, fresh=SAME_FRESH), Action.ASK, False),
    ("merge, apply died", Event.MERGE, facts(pr="merged", lock=mine(S.APPLYING, True), reviewed=REVIEWED,
                                             matches=True), Action.PLAN_TARGET, False),
    ("merge, apply failed", Event.MERGE, facts(pr="merged", lock=mine(S.APPLY_FAILED, True)), Action.PLAN_TARGET,
     False),
    ("merge, fresh same changes", Event.MERGE, facts(pr="merged", lock=mine(), reviewed=REVIEWED, fresh=SAME_FRESH),
     Action.APPLY_FRESH, True),
    ("merge, fresh other changes", Event.MERGE, facts(pr="merged", lock=mine(), reviewed=REVIEWED,
                                                      fresh=OTHER_FRESH), Action.ASK, False),
    ("merge, fresh but nothing reviewed", Event.MERGE, facts(pr="merged", lock=mine(), fresh=SAME_FRESH), Action.ASK,
     False),
    ("merge, fresh same digest but reviewed an older head", Event.MERGE,
     facts(pr="merged", lock=mine(), reviewed=PlanView(OLD, True, "d1"), fresh=SAME_FRESH), Action.ASK, False),
    ("merge, empty digest never equal", Event.MERGE,
     facts(pr="merged", lock=mine(), reviewed=PlanView(HEAD, True, ""), fresh=PlanView(HEAD, True, "")),
     Action.ASK, False),
    ("merge, fresh no changes", Event.MERGE, facts(pr="merged", lock=mine(), reviewed=REVIEWED, fresh=EMPTY_FRESH),
     Action.RELEASE, False),
    ("merge, applied before, fresh no changes", Event.MERGE,
     facts(pr="merged", lock=mine(S.APPLIED, True), fresh=EMPTY_FRESH), Action.RELEASE, False),
    ("merge, applied before, fresh has changes", Event.MERGE,
     facts(pr="merged", lock=mine(S.APPLIED, True), reviewed=REVIEWED, fresh=SAME_FRESH), Action.ASK, False),
    ("merge without the lock, free", Event.MERGE, facts(pr="merged"), Action.ACQUIRE, False),
    ("merge without the lock, held by other", Event.MERGE, facts(pr="merged", lock=theirs()), Action.QUEUE, False),
    ("merge into other branch, no lock", Event.MERGE, facts(pr="merged", applies=False), Action.NOTHING, False),
    ("merge into other branch, lock held", Event.MERGE, facts(pr="merged", applies=False, lock=mine()),
     Action.RELEASE, False),
    ("merge into other branch, flagged", Event.MERGE, facts(pr="merged", applies=False, lock=mine(S.PLANNED, True)),
     Action.KEEP_FLAGGED, False),
    # --- a reviewed plan made with extra arguments: applied as is on an open PR, never by a merge ---
    ("apply reviewed, made with extra arguments", Event.APPLY, facts(lock=mine(), reviewed=EXTRA, matches=True),
     Action.APPLY_REVIEWED, False),
    ("merge, reviewed made with extra arguments: plan the merge", Event.MERGE,
     facts(pr="merged", lock=mine(), reviewed=EXTRA, matches=True), Action.PLAN_TARGET, False),
    ("merge, made with extra arguments, fresh same changes", Event.MERGE,
     facts(pr="merged", lock=mine(), reviewed=EXTRA, matches=True, fresh=SAME_FRESH), Action.APPLY_FRESH, True),
    ("merge, made with extra arguments, fresh other changes", Event.MERGE,
     facts(pr="merged", lock=mine(), reviewed=EXTRA, matches=True, fresh=OTHER_FRESH), Action.ASK, False),
    ("merge, made with extra arguments, fresh no changes", Event.MERGE,
     facts(pr="merged", lock=mine(), reviewed=EXTRA, matches=True, fresh=EMPTY_FRESH), Action.RELEASE, False),
    ("apply merged, made with extra arguments", Event.APPLY_MERGED,
     facts(pr="merged", lock=mine(S.PLAN_STALE), reviewed=EXTRA, matches=True), Action.PLAN_TARGET, False),
    ("handed to a merged PR, made with extra arguments", Event.HANDOVER,
     facts(pr="merged", lock=mine(), reviewed=EXTRA, matches=True), Action.PLAN_TARGET, False),
    # --- apply on a merged PR (or a merged PR handed the lock) ---
    ("apply merged, shown plan matches the base tip", Event.APPLY_MERGED,
     facts(pr="merged", lock=mine(S.PLAN_STALE), reviewed=PlanView(OLD, True, "x"), matches=True),
     Action.APPLY_REVIEWED, True),
    ("apply merged, base moved", Event.APPLY_MERGED, facts(pr="merged", lock=mine(S.PLAN_STALE), reviewed=REVIEWED),
     Action.PLAN_TARGET, False),
    ("apply merged, fresh no changes", Event.APPLY_MERGED, facts(pr="merged", lock=mine(), fresh=EMPTY_FRESH),
     Action.RELEASE, False),
    ("apply merged, not held", Event.APPLY_MERGED, facts(pr="merged", lock=theirs()), Action.QUEUE, False),
    # --- hand-over ---
    ("handed to an open PR", Event.HANDOVER, facts(lock=mine(S.PLANNING)), Action.PLAN, False),
    ("handed to a closed PR", Event.HANDOVER, facts(pr="closed", lock=mine(S.PLANNING)), Action.RELEASE, False),
    ("handed to a PR retargeted to a branch that does not apply", Event.HANDOVER,
     facts(applies=False, lock=mine(S.PLANNING)), Action.RELEASE, False),
    ("handed to a PR merged into a branch that does not apply", Event.HANDOVER,
     facts(pr="merged", applies=False, lock=mine(S.PLANNING)), Action.RELEASE, False),
    ("handed to a merged PR", Event.HANDOVER, facts(pr="merged", lock=mine(S.PLANNING)), Action.PLAN_TARGET, False),
    ("handed to a merged PR, fresh differs", Event.HANDOVER, facts(pr="merged", lock=mine(S.PLANNING),
                                                                     fresh=SAME_FRESH), Action.ASK, False),
    # --- close ---
    ("close, not held", Event.CLOSE, facts(pr="closed", lock=theirs()), Action.NOTHING, False),
    ("close, free", Event.CLOSE, facts(pr="closed"), Action.NOTHING, False),
    *[(f"close mine {s.value}", Event.CLOSE, facts(pr="closed", lock=mine(s)), Action.RELEASE, False)
      for s in HELD_STATES],
    *[(f"close mine {s.value}", Event.CLOSE, facts(pr="closed", lock=mine(s, True)), Action.KEEP_FLAGGED, False)
      for s in (S.APPLYING, S.APPLIED, S.APPLY_FAILED)],
    ("close mine, re-planned after an apply", Event.CLOSE, facts(pr="closed", lock=mine(S.PLANNED, True)),
     Action.KEEP_FLAGGED, False),
    # --- unlock ---
    ("unlock, not held", Event.UNLOCK, facts(lock=theirs()), Action.REFUSE, False),
    ("unlock, free", Event.UNLOCK, facts(), Action.REFUSE, False),
    *[(f"unlock mine {s.value}", Event.UNLOCK, facts(lock=mine(s)), Action.RELEASE, False) for s in HELD_STATES],
    ("unlock while applying", Event.UNLOCK, facts(lock=mine(S.APPLYING, True), run_alive=False), Action.REFUSE,
     False),
    *[(f"unlock flagged {s.value}", Event.UNLOCK, facts(lock=mine(s, True)), Action.REFUSE, False)
      for s in (S.APPLIED, S.APPLY_FAILED, S.PLANNED)],
    ("admin unlock, applying, run alive", Event.FORCE_UNLOCK, facts(lock=mine(S.APPLYING, True), run_alive=True),
     Action.REFUSE, False),
    ("admin unlock, applying, run dead", Event.FORCE_UNLOCK, facts(lock=mine(S.APPLYING, True)), Action.RELEASE,
     False),
    *[(f"admin unlock flagged {s.value}", Event.FORCE_UNLOCK, facts(lock=mine(s, True)), Action.RELEASE, False)
      for s in (S.APPLIED, S.APPLY_FAILED, S.PLANNED)],
    ("admin unlock, not held", Event.FORCE_UNLOCK, facts(lock=theirs()), Action.REFUSE, False),
    # A run holding the guard refuses every unlock, whatever the state says (a state can be wrong).
    *[(f"{e.value}, {s.value}, a run holds the guard", e, facts(lock=mine(s, f), run_alive=True), Action.REFUSE, False)
      for e in (Event.UNLOCK, Event.FORCE_UNLOCK) for s in S for f in (False, True)],
    # --- a worker died ---
    ("worker died applying", Event.WORKER_DIED, facts(lock=mine(S.APPLYING, True)), Action.MARK_FAILED, False),
    ("worker died planning", Event.WORKER_DIED, facts(lock=mine(S.PLANNING)), Action.MARK_FAILED, False),
    ("worker died, planned", Event.WORKER_DIED, facts(lock=mine(S.PLANNED)), Action.NOTHING, False),
    ("worker died, lock gone", Event.WORKER_DIED, facts(), Action.NOTHING, False),
    # Only the run that set the state is its run: another job of the PR (gave up waiting, or planned) is not.
    ("another run of the PR died, applying", Event.WORKER_DIED, facts(lock=mine(S.APPLYING, True),
                                                                      command=OTHER_RUN), Action.NOTHING, False),
    ("another run of the PR died, planning", Event.WORKER_DIED, facts(lock=mine(S.PLANNING), command=OTHER_RUN),
     Action.NOTHING, False),
    ("a run died, state set by tfbot itself", Event.WORKER_DIED, facts(lock=mine(S.PLANNING, set_by="")),
     Action.NOTHING, False),
    ("a run of an unknown command died", Event.WORKER_DIED, facts(lock=mine(S.APPLYING, True, set_by=""), command=""),
     Action.NOTHING, False),
]


@pytest.mark.parametrize("event,given,action,release_after", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_cell_of_the_table(event: Event, given: Facts, action: Action, release_after: bool) -> None:
    decision = decide(event, given)
    assert decision.action is action, decision
    assert decision.release_after is release_after


def test_refusals_and_asks_say_why() -> None:
    for _, event, given, action, _ in CASES:
        decision = decide(event, given)
        if action in (Action.REFUSE, Action.ASK, Action.REPLAN, Action.KEEP_FLAGGED, Action.RELEASE):
            assert decision.reason, (event, given)


def test_nothing_is_applied_that_was_not_reviewed_for_this_head() -> None:
    """Over every combination of facts, an apply happens only of a shown plan of the final head (or, after the
    merge, one that matches the base tip), and never while another PR holds the lock or an apply runs."""
    import itertools

    locks = [None, theirs(), *[mine(s, f) for s in S for f in (False, True)]]
    plans = [None, REVIEWED, PlanView(OLD, True, "d1"), EXTRA]
    fresh = [None, SAME_FRESH, OTHER_FRESH, EMPTY_FRESH]
    for event, lock, reviewed, new, matches, pr, applies in itertools.product(
            Event, locks, plans, fresh, (False, True), ("open", "closed", "merged"), (False, True)):
        f = facts(pr=pr, applies=applies, lock=lock, reviewed=reviewed, matches=matches, fresh=new)
        d = decide(event, f)
        if d.action is Action.APPLY_REVIEWED:
            assert lock is not None and lock.pull == ME and lock.state is not S.APPLYING and reviewed and matches
            assert applies and pr in ("open", "merged")
            if event is Event.APPLY and pr == "open":
                assert reviewed.head_sha == HEAD
            if event is Event.MERGE:
                assert reviewed.head_sha == HEAD
            if pr == "merged":  # a merge applies what the branch holds: never a plan made with extra arguments
                assert not reviewed.extra_args
        if d.action is Action.APPLY_FRESH:
            assert lock is not None and lock.pull == ME and pr == "merged" and applies
            assert reviewed is not None and new is not None and reviewed.digest == new.digest
            assert reviewed.head_sha == HEAD
        if d.action is Action.RELEASE and event in (Event.CLOSE, Event.UNLOCK):
            assert lock is not None and not lock.diverged and lock.state not in (
                S.APPLYING, S.APPLIED, S.APPLY_FAILED)


def test_a_merge_that_will_not_apply_a_plan_made_with_extra_arguments_says_so() -> None:
    planning = decide(Event.MERGE, facts(pr="merged", lock=mine(), reviewed=EXTRA, matches=True))
    assert "made with extra arguments" in planning.reason
    asking = decide(Event.MERGE, facts(pr="merged", lock=mine(), reviewed=EXTRA, matches=True, fresh=OTHER_FRESH))
    assert "the reviewed plan was made with extra arguments" in asking.reason
    # `apply` of a targeted plan, then the merge: the applied plan is gone, and the branch holds more.
    after_apply = decide(Event.MERGE, facts(pr="merged", lock=mine(S.APPLIED, True), fresh=OTHER_FRESH))
    assert after_apply.action is Action.ASK
    assert after_apply.reason == "the default branch holds more than what this PR applied"


def test_the_changes_digest_tells_plans_apart_by_their_output_values_too():
    """The digest APPLY_FRESH compares: equal only for the same resource changes and the same output changes."""
    from bot.lifecycle.runner import changes_digest

    def plan(endpoint: str, unchanged: str = "same") -> dict:
        create = {"actions": ["create"], "before": None, "after": {"input": "s1"}}
        return {"resource_changes": [{"address": "terraform_data.subnet", "change": create}],
                "output_changes": {"endpoint": {"actions": ["create"], "before": None, "after": endpoint},
                                   "kept": {"actions": ["no-op"], "before": unchanged, "after": unchanged}}}

    assert changes_digest(plan("v1")) == changes_digest(plan("v1")) != ""
    assert changes_digest(plan("v1")) != changes_digest(plan("v2"))
    assert changes_digest(plan("v1", unchanged="a")) == changes_digest(plan("v1", unchanged="b"))  # no-ops: nothing done
    assert changes_digest(None) == ""
