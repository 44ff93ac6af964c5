"""The drift check a change record asks for, until drift detection exists.

A change-record issue that names a project queues `check_drift` (bot/jobs.py) for it, with why and the issue's
URL. Drift detection is not built yet: this records the request (a log line and an audit entry, so `tfbot audit`
shows it) and runs nothing. Drift detection plugs its run in `request_drift_check`, and links `link` from the
drift issue it opens, so "what drifted" and "who changed it" meet.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.models import Project
from bot.state import audit

if TYPE_CHECKING:
    from bot.services import WorkerServices

log = logging.getLogger("tfbot.changes")


def request_drift_check(svc: WorkerServices, project: Project, reason: str, link: str) -> str:
    """Record that `project` should be checked for drift now because of `reason` (a change record at `link`);
    returns what was done: `requested`."""
    log.info("drift check of %s %s requested because %s (%s); drift detection is not built yet, so nothing was run",
             project.repo, project.name, reason, link)
    audit.record(svc.redis, audit.AuditEntry(
        action="drift-check-requested", repo=project.repo, pull=0, project=project.name, user="tfbot",
        outcome="requested", detail=f"{reason}: {link}"))
    return "requested"
