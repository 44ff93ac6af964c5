"""How drift checks are shown on `/drift` and in `/api/drift` (pure, no I/O): every project's last check, its
state, when, what it found and where to read more.

The page and the JSON read the same `DriftCheck` records (bot/state/drift_checks.py); links in a record are shown
only when they are absolute http(s) URLs, so a record can never render a `javascript:` link.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Iterable

from bot.state.drift_checks import DriftCheck, DriftState
from bot.web.present import commit_url, human_utc, iso_utc, relative_age, run_url, safe_url

# State -> CSS class of its badge: drift wants a person, a failure wants one more urgently; skipped is calm.
STATE_CLASS = {
    DriftState.CLEAN: "ok",
    DriftState.DRIFTED: "warn",
    DriftState.FAILED: "bad",
    DriftState.SKIPPED: "busy",
}
SHOWN_RESOURCES = 8  # per row on the page; the JSON and the issue hold them all


def check_run_url(check: DriftCheck, base_url: str) -> str:
    """The check's run log: the URL the check recorded, else its run's page under `base_url`; "" when none."""
    return safe_url(check.run_url) or run_url(base_url, check.run_id)


def drift_json(check: DriftCheck, base_url: str = "") -> dict[str, Any]:
    """One project's last check as `/api/drift` shows it. Times: `checked_at` ISO 8601 UTC, `checked_at_unix`
    seconds; URLs are null when there is none."""
    return {
        "repo": check.repo,
        "project": check.project,
        "dir": check.dir,
        "workspace": check.workspace,
        "state": check.state.value,
        "checked_at": iso_utc(check.checked_at),
        "checked_at_unix": int(check.checked_at),
        "sha": check.sha or None,
        "summary": check.summary,
        "detail": check.detail,
        "resources": list(check.resources),
        "run_url": check_run_url(check, base_url) or None,
        "issue_number": check.issue or None,
        "issue_url": safe_url(check.issue_url) or None,
    }


def drift_listing(checks: Iterable[DriftCheck], now: float, base_url: str = "") -> dict[str, Any]:
    """`/api/drift`: every project's last check (by repository, then project), and how many are in each state."""
    shown = list(checks)
    counts = collections.Counter(c.state for c in shown)
    return {
        "generated_at": iso_utc(now),
        "total": len(shown),
        "counts": {state.value: counts[state] for state in DriftState},
        "projects": [drift_json(c, base_url) for c in shown],
    }


@dataclass(frozen=True)
class DriftRow:
    """One project's last check prepared for the HTML table: every value plain text, escaped by the template."""

    check: DriftCheck
    state_class: str
    age: str
    when: str
    when_iso: str
    run_url: str
    issue_url: str
    commit_url: str
    resources: tuple[str, ...]  # the first SHOWN_RESOURCES
    more: int  # how many more the row leaves out


def drift_row(check: DriftCheck, now: float, api_url: str, base_url: str = "") -> DriftRow:
    return DriftRow(
        check=check,
        state_class=STATE_CLASS[check.state],
        age=relative_age(now - check.checked_at),
        when=human_utc(check.checked_at),
        when_iso=iso_utc(check.checked_at),
        run_url=check_run_url(check, base_url),
        issue_url=safe_url(check.issue_url),
        commit_url=commit_url(api_url, check.repo, check.sha) if check.sha else "",
        resources=check.resources[:SHOWN_RESOURCES],
        more=max(0, len(check.resources) - SHOWN_RESOURCES),
    )


def state_counts(checks: Iterable[DriftCheck]) -> list[tuple[str, str, int]]:
    """(state, css class, count) for the states present, drifted and failed first: what wants a look."""
    counts = collections.Counter(c.state for c in checks)
    order = (DriftState.DRIFTED, DriftState.FAILED, DriftState.SKIPPED, DriftState.CLEAN)
    return [(state.value, STATE_CLASS[state], counts[state]) for state in order if counts[state]]
