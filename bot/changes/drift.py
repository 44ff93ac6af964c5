"""The drift check a change record asks for: the project is checked at once (bot/drift/check.py), and the change
record's issue (`link`) is listed in the project's drift issue while it stays open, so "what drifted" and "who
changed it" meet.

A change-record issue that names a project queues `check_drift` (bot/jobs.py) for it, with why and the issue's
URL; the drift scheduler queues the same job with reason `scheduled` and no link.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from bot.models import Project

if TYPE_CHECKING:
    from bot.services import WorkerServices
    from bot.state.drift_checks import DriftCheck


def request_drift_check(svc: WorkerServices, project: Project, reason: str, link: str,
                        retried_if_busy: bool = False) -> DriftCheck:
    """Check `project` for drift now because of `reason` (a change record at `link`, "" when none); returns the check
    as recorded (not recorded when it found the project busy and `retried_if_busy`: the caller tries again)."""
    from bot.drift.check import check_project

    return check_project(svc, project, reason=reason, link=link, retried_if_busy=retried_if_busy)
