"""May an `apply` commented on a drift issue run, and what it does once the default branch is planned (pure).

Asked twice by bot/drift/apply.py, over values read at the moment of acting:

| facts                                                                | action  |
|----------------------------------------------------------------------|---------|
| the author's permission is below write (read, triage, none)          | REFUSE  |
| the issue is closed                                                  | REFUSE  |
| no drift check recorded, or the last one is not `drifted`            | REFUSE  |
| the last check kept no digest (Terraform's JSON was too large)       | REFUSE  |
| the project's lock is held by a PR (or another issue)                | REFUSE  |
| otherwise, not planned yet                                           | PLAN    |
| planned: changes, and their digest equals the last check's           | APPLY   |
| planned: no changes any more, or changes of another digest           | RECHECK |

PLAN takes the lock (never joining its line) and plans the default branch's current head under the run guard;
APPLY applies that plan, which is the one the issue shows: the same changes with the same values
(`bot.lifecycle.runner.changes_digest`). RECHECK applies nothing and checks the project again, so the issue shows
what a new `apply` would do.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bot.models import REPO_ROLES


class DriftAction(str, Enum):
    REFUSE = "refuse"  # nothing runs; the reason is told on the issue
    PLAN = "plan"  # plan the default branch's head, holding the lock
    APPLY = "apply"  # the fresh plan is what the issue shows: apply it
    RECHECK = "recheck"  # the drift changed since the issue was written: apply nothing, check again


@dataclass(frozen=True)
class Holder:
    """Who holds the project's lock: a PR (`kind` "pull") or a drift issue ("drift"), by number and login."""

    number: int
    user: str
    kind: str = "pull"


@dataclass(frozen=True)
class DriftApplyFacts:
    """Everything the decision reads. `check_state` is a DriftState value ("" when never checked); `fresh_digest` is
    None before the plan, then the digest of the plan just made ("" when too large to compare)."""

    repo: str
    project: str
    issue: int
    author: str
    permission: str  # GitHub's permission of the author: admin, maintain, write, triage, read, none
    issue_open: bool
    check_state: str
    check_digest: str
    holder: Holder | None = None  # None: the lock is free
    fresh_digest: str | None = None
    fresh_has_changes: bool = False


@dataclass(frozen=True)
class DriftDecision:
    action: DriftAction
    reason: str  # one sentence of markdown for the issue (values in code spans)


def may_write(permission: str) -> bool:
    """Whether a GitHub permission is write or higher (an unknown one is not)."""
    return permission in REPO_ROLES and REPO_ROLES.index(permission) >= REPO_ROLES.index("write")


def decide(facts: DriftApplyFacts) -> DriftDecision:
    """The one decision for `facts` (see the module's table)."""
    name = f"`{facts.project}`"
    if not may_write(facts.permission):
        return _refuse(f"@{facts.author} has `{facts.permission}` permission on this repository; `apply` on a drift "
                       "issue needs write, maintain or admin")
    if not facts.issue_open:
        return _refuse("this drift issue is closed")
    if not facts.check_state:
        return _refuse(f"tfbot has no drift check of {name} on record, so there is no reviewed plan to apply")
    if facts.check_state != "drifted":
        return _refuse(f"the last drift check of {name} found it `{facts.check_state}`, so there is no drifted plan "
                       "to apply")
    if not facts.check_digest:
        return _refuse(f"the plan this issue shows for {name} was too large to compare with a new one, so tfbot "
                       "cannot tell that it would apply what you reviewed")
    holder = facts.holder
    if holder is not None and not (holder.kind == "drift" and holder.number == facts.issue):
        what = "drift issue " if holder.kind == "drift" else ""
        return _refuse(f"{what}{facts.repo}#{holder.number} by @{holder.user} holds {name}; comment `apply` again "
                       "once its lock is released")
    if facts.fresh_digest is None:
        return DriftDecision(DriftAction.PLAN, f"plan {name} on the default branch's head")
    if not facts.fresh_has_changes:
        return DriftDecision(DriftAction.RECHECK, f"the default branch's head plans no changes of {name} any more")
    if facts.fresh_digest and facts.fresh_digest == facts.check_digest:
        return DriftDecision(DriftAction.APPLY, f"the plan of {name} is the one this issue shows")
    return DriftDecision(DriftAction.RECHECK, f"the plan of {name} differs from the one this issue shows (the "
                                              "default branch or the infrastructure moved since)")


def _refuse(reason: str) -> DriftDecision:
    return DriftDecision(DriftAction.REFUSE, reason)
