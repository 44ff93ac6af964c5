"""What one drift check's result does to its project's issue, and who hears of it (pure).

| check   | open issue?            | issue                          | notification   |
|---------|------------------------|--------------------------------|----------------|
| drifted | none                   | open one                       | drift_found    |
| drifted | yes, same resources    | edit its body                  | -              |
| drifted | yes, other resources   | edit its body, and comment     | drift_found    |
| clean   | yes                    | comment, then close it         | drift_resolved |
| clean   | none                   | -                              | -              |
| failed  | yes, last check not    | comment that the check failed  | -              |
|         | failed                 |                                |                |
| failed  | otherwise              | -                              | -              |
| skipped | any                    | -                              | -              |

"Same resources" compares the set of `"<action> <address>"` the issue shows with the set found, by digest: the
issue's body carries the digest of the set it shows (`set_marker`), so the comparison holds when tfbot's Redis
lost what it knew.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

_SET_RE = re.compile(r"<!-- tfbot:drift-set ([0-9a-f]{64}) -->")
_PLAN_RE = re.compile(r"<!-- tfbot:drift-plan ([0-9a-f]{64}|none) -->")


class IssueStep(str, Enum):
    OPEN = "open"
    UPDATE = "update"
    CLOSE = "close"
    NOTE_FAILURE = "note failure"
    NONE = "none"


@dataclass(frozen=True)
class Transition:
    issue: IssueStep
    comment: bool = False  # UPDATE: the drifted set changed, so a comment says how
    notify: str = ""  # drift_found, drift_resolved or ""


def set_digest(resources: Iterable[str]) -> str:
    """A digest of a set of drifted resources (order and repeats do not count)."""
    return hashlib.sha256(json.dumps(sorted(set(resources))).encode()).hexdigest()


def set_marker(resources: Iterable[str]) -> str:
    """The hidden line a drift issue's body ends with: the digest of the resources it shows."""
    return f"<!-- tfbot:drift-set {set_digest(resources)} -->"


def shown_digest(body: str) -> str:
    """The digest of the set the issue's body shows; "" when it carries none (edited by hand)."""
    found = _SET_RE.findall(body or "")
    return found[-1] if found else ""


def plan_marker(digest: str) -> str:
    """The hidden line that says which plan the body shows (its changes digest, bot.lifecycle.runner.changes_digest):
    an `apply` comment is bound to it as the issue read when the comment was made. Written last in the body even
    without a digest (`none`): the plan's text folded above it comes from Terraform, and a marker-like line in it
    must never be the last one."""
    return f"<!-- tfbot:drift-plan {digest if re.fullmatch(r'[0-9a-f]{64}', digest or '') else 'none'} -->"


def shown_plan_digest(body: str) -> str:
    """The changes digest of the plan the issue's body shows (its last plan marker); "" when it carries none."""
    found = _PLAN_RE.findall(body or "")
    return found[-1] if found and found[-1] != "none" else ""


def transition(state: str, open_issue: bool, shown: str, found: Iterable[str], last_state: str = "") -> Transition:
    """What to do after a check in `state` (clean, drifted, failed, skipped) that found `found` drifted, when the
    project has an open issue (`open_issue`) showing the set of digest `shown`; `last_state` is the project's
    previous check's state ("" when none)."""
    if state == "drifted":
        if not open_issue:
            return Transition(IssueStep.OPEN, notify="drift_found")
        changed = shown != set_digest(found)
        return Transition(IssueStep.UPDATE, comment=changed, notify="drift_found" if changed else "")
    if state == "clean":
        return Transition(IssueStep.CLOSE, notify="drift_resolved") if open_issue else Transition(IssueStep.NONE)
    if state == "failed" and open_issue and last_state != "failed":
        return Transition(IssueStep.NOTE_FAILURE)
    return Transition(IssueStep.NONE)
