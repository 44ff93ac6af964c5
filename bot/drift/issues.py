"""A project's drift issue on GitHub: found (never a second one opened), opened, updated, told a check failed, and
closed. Text comes from bot/render/drift.py; what to do from bot/drift/transitions.py.

The issue is found by its hidden marker (bot/drift/marker.py), not by tfbot's Redis alone: the number tfbot keeps
is tried first and believed only if GitHub shows that issue open with a marker naming the project; otherwise the
repository's open issues labelled `drift` are searched for the marker. A lost or stale Redis key therefore never
opens a duplicate.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from bot.drift.marker import DriftSubject, marker, subject_of
from bot.drift.transitions import plan_marker, set_marker
from bot.render.drift import (BODY_LIMIT, LABEL, LABEL_COLOR, LABEL_DESCRIPTION, DriftReport, changed_comment,
                              issue_body, issue_title, values_changed_comment)

if TYPE_CHECKING:
    from bot.adapters.github import IssueInfo, RepoAPI


def names(body: str, subject: DriftSubject) -> bool:
    """Whether an issue's body is a drift issue of the project `subject` names (repository, dir and workspace: the
    project's name may have changed in the config since)."""
    found = subject_of(body)
    return found is not None and (found.repo.lower(), found.dir, found.workspace) == (
        subject.repo.lower(), subject.dir, subject.workspace)


def find_open_issue(api: RepoAPI, subject: DriftSubject, app_id: int | None, bot_login: str,
                    known: int = 0) -> IssueInfo | None:
    """The project's open drift issue, opened by tfbot's App as itself (`IssueInfo.by_app`: a bot author, the App's
    by `performed_via_github_app` or by login; no person can be one): #`known` when GitHub confirms it, else the
    oldest such open issue labelled `drift` whose marker names the project; None when there is none. Raises
    GitHubError."""
    if known:
        issue = api.issue(known)
        if issue is not None and issue.state == "open" and issue.by_app(app_id, bot_login) \
                and names(issue.body, subject):
            return issue
    for issue in api.issues_labelled(LABEL, state="open"):
        # A marker copied into someone's issue does not make it tfbot's.
        if issue.by_app(app_id, bot_login) and names(issue.body, subject):
            return issue
    return None


def body_of(subject: DriftSubject, report: DriftReport) -> str:
    """The whole body: marker, text, and the hidden digest of the set it shows (read back by the next check)."""
    tail = set_marker(report.resources) + "\n" + plan_marker(report.digest)  # last: see plan_marker
    return issue_body(marker(subject), report, limit=BODY_LIMIT - len(tail) - 1) + "\n" + tail


def open_issue(api: RepoAPI, subject: DriftSubject, report: DriftReport) -> tuple[int, str]:
    """Open the project's drift issue, labelled `drift` (the label made first when missing); (number, URL)."""
    api.ensure_label(LABEL, LABEL_COLOR, LABEL_DESCRIPTION)
    return api.create_issue(issue_title(report.repo, report.project), body_of(subject, report), [LABEL])


def update_issue(api: RepoAPI, number: int, subject: DriftSubject, report: DriftReport,
                 before: tuple[str, ...] | None, shown_plan: str = "") -> None:
    """Rewrite the issue's title and body; with `before` (the set it showed, () when unknown), comment how the
    drifted set changed; else, when the plan it showed (`shown_plan`, its digest) sets other values, say so."""
    api.edit_issue(number, issue_title(report.repo, report.project), body_of(subject, report))
    if before is not None:
        api.create_comment(number, changed_comment(before, report))
    elif shown_plan and report.digest and shown_plan != report.digest:
        api.create_comment(number, values_changed_comment(report))


def close_issue(api: RepoAPI, number: int, comment: str) -> None:
    """Comment why, then close the issue as completed."""
    api.create_comment(number, comment)
    api.close_issue(number, "completed")
