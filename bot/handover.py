"""Releasing a workspace lock and handing it to the next PR in line, which is then planned automatically."""
from __future__ import annotations

import logging
from typing import Any

from bot import audit
from bot.models import LockState, Project
from bot.queue import enqueue_event
from bot.records import project_to_dict

log = logging.getLogger(__name__)


def release_and_hand_over(svc: Any, project: Project, pull: int, token: int | None, reason: str) -> bool:
    """Release `pull`'s lock (owner-checked); if a PR waits for it, it now holds it: queue its plan. True if released."""
    result = svc.locks.release(project, pull, token)
    if result.released:
        log.info("lock of %s released by #%d (%s)", project.name, pull, reason)
        plan_next(svc, project, result.next_waiter, reason)
    return bool(result.released)


def force_release_and_hand_over(svc: Any, project: Project, by: str, reason: str, token: int | None = None) -> bool:
    """Release the lock (authorized unlock) if it is still the one seen (`token`); hand it over like a release.

    A lock whose apply is running is never released: the apply's outcome must reach its PR and its state.
    """
    current = svc.locks.get(project)
    if current is not None and current.state == LockState.APPLYING:
        log.warning("unlock of %s by %s refused: an apply is running", project.name, by)
        return False
    result = svc.locks.force_release(project, by, token=token)
    if result.released:
        log.info("lock of %s released by %s (%s)", project.name, by, reason)
        holder = result.previous
        audit.record(svc.redis, audit.AuditEntry(
            action="unlock", repo=project.repo, pull=holder.pull if holder else 0, project=project.name, user=by,
            detail=reason))
        plan_next(svc, project, result.next_waiter, reason)
    return bool(result.released)


def plan_next(svc: Any, project: Project, waiter: dict[str, Any] | None, reason: str) -> None:
    """Queue the plan of the PR that was just handed the lock, if any."""
    if not waiter:
        return
    enqueue_event(svc.events_queue, "bot.jobs.plan_waiter",
                  (project_to_dict(project), int(waiter["pull"]), int(waiter["installation"]), reason),
                  f"plan {project.repo}#{waiter['pull']} {project.name} after the lock was handed over")
