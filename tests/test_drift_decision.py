"""The decision of an `apply` commented on a drift issue (bot/drift/decision.py), every row of its table."""
from __future__ import annotations

from dataclasses import replace

import pytest

from bot.drift.decision import DriftAction, DriftApplyFacts, Holder, decide, may_write

READY = DriftApplyFacts(repo="acme/infra", project="network", issue=15, author="alice", permission="write",
                        issue_open=True, check_state="drifted", check_digest="d1")


@pytest.mark.parametrize("permission, allowed", [
    ("admin", True), ("maintain", True), ("write", True), ("triage", False), ("read", False), ("none", False),
    ("", False), ("custom-role", False)])
def test_write_or_higher_may_apply(permission, allowed):
    assert may_write(permission) is allowed
    decision = decide(replace(READY, permission=permission))
    assert (decision.action is DriftAction.PLAN) is allowed
    if not allowed:
        assert decision.action is DriftAction.REFUSE
        assert f"@alice has `{permission}` permission" in decision.reason and "write, maintain or admin" in decision.reason


def test_a_ready_issue_is_planned_first():
    assert decide(READY).action is DriftAction.PLAN


def test_a_closed_issue_is_refused():
    decision = decide(replace(READY, issue_open=False))
    assert decision.action is DriftAction.REFUSE and "closed" in decision.reason


@pytest.mark.parametrize("state, words", [("", "no drift check"), ("clean", "found it `clean`"),
                                          ("failed", "found it `failed`"), ("skipped", "found it `skipped`")])
def test_only_a_drifted_check_has_a_plan_to_apply(state, words):
    decision = decide(replace(READY, check_state=state))
    assert decision.action is DriftAction.REFUSE and words in decision.reason


def test_a_check_without_a_digest_cannot_be_compared():
    decision = decide(replace(READY, check_digest=""))
    assert decision.action is DriftAction.REFUSE and "too large to compare" in decision.reason


def test_a_pr_holding_the_lock_is_named():
    decision = decide(replace(READY, holder=Holder(number=12, user="bob")))
    assert decision.action is DriftAction.REFUSE
    assert decision.reason.startswith("acme/infra#12 by @bob holds `network`")


def test_another_drift_issue_holding_the_lock_is_named_as_one():
    decision = decide(replace(READY, holder=Holder(number=7, user="carol", kind="drift")))
    assert decision.action is DriftAction.REFUSE and decision.reason.startswith("drift issue acme/infra#7 by @carol")


def test_a_pr_with_the_issues_number_is_not_the_issue():
    # GitHub numbers issues and PRs in one sequence, so this cannot happen; a lock's kind still says who holds it.
    assert decide(replace(READY, holder=Holder(number=15, user="bob", kind="pull"))).action is DriftAction.REFUSE


def test_the_issue_holding_its_own_lock_goes_on():
    held = replace(READY, holder=Holder(number=15, user="alice", kind="drift"))
    assert decide(held).action is DriftAction.PLAN
    assert decide(replace(held, fresh_digest="d1", fresh_has_changes=True)).action is DriftAction.APPLY


def test_the_plan_the_issue_shows_is_applied():
    decision = decide(replace(READY, fresh_digest="d1", fresh_has_changes=True))
    assert decision.action is DriftAction.APPLY and "the one this issue shows" in decision.reason


def test_another_plan_is_never_applied_but_checked_again():
    decision = decide(replace(READY, fresh_digest="d2", fresh_has_changes=True))
    assert decision.action is DriftAction.RECHECK and "differs" in decision.reason


def test_a_plan_too_large_to_compare_is_never_applied():
    assert decide(replace(READY, check_digest="", fresh_digest="", fresh_has_changes=True)).action \
        is DriftAction.REFUSE
    assert decide(replace(READY, fresh_digest="", fresh_has_changes=True)).action is DriftAction.RECHECK


def test_no_changes_any_more_is_checked_again_not_applied():
    decision = decide(replace(READY, fresh_digest="d1", fresh_has_changes=False))
    assert decision.action is DriftAction.RECHECK and "no changes" in decision.reason


def test_refusals_come_before_the_plan_is_looked_at():
    # A reader's comment never applies, even when the plan matches.
    assert decide(replace(READY, permission="read", fresh_digest="d1", fresh_has_changes=True)).action \
        is DriftAction.REFUSE
