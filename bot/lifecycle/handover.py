"""Releasing a workspace lock and handing it to the next PR in line, which is then planned automatically.

Every release goes through here, whoever asks (a run after the merge's apply, a close, a writer's `unlock`,
an admin's unlock): the lock store's release script refuses atomically what bot/lifecycle/decision.py refuses, and the
PR's saved plans of that project go with its lock.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.models import Project
from bot.queue import enqueue_event
from bot.state.records import project_to_dict

if TYPE_CHECKING:
    from bot.services import HasEventsQueue, WorkerServices

log = logging.getLogger(__name__)


def release_and_hand_over(svc: WorkerServices, project: Project, pull: int, token: int | None, reason: str,
                          mode: str = "owner", command_id: str = "") -> bool:
    """Release `pull`'s lock (owner-checked; `mode` as in LockStore.release: "owner", "close", "unlock" or "taken",
    the last with the `command_id` that took it); if a PR waits for it, it now holds it: queue its plan. True if
    released."""
    result = svc.locks.release(project, pull, token, mode=mode, command_id=command_id)
    if result.released:
        log.info("lock of %s released by #%d (%s)", project.name, pull, reason)
        drop_plans(svc, project, pull)
        plan_next(svc, project, result.next_waiter, reason)
    elif result.refused:
        log.info("lock of %s kept by #%d (%s): %s", project.name, pull, reason, result.refused)
    return bool(result.released)


def drop_plans(svc: WorkerServices, project: Project, pull: int) -> None:
    """Forget `pull`'s saved plans of `project` and delete their files: without the lock they never apply."""
    from bot.lifecycle.reporting import drop_files

    drop_files(svc, svc.records.delete_plans(project, pull))


def plan_next(svc: HasEventsQueue, project: Project, waiter: dict[str, Any] | None, reason: str) -> None:
    """Queue the plan of the PR that was just handed the lock, if any."""
    if not waiter:
        return
    enqueue_event(svc.events_queue, "bot.jobs.plan_waiter",
                  (project_to_dict(project), int(waiter["pull"]), int(waiter["installation"]), reason),
                  f"plan {project.repo}#{waiter['pull']} {project.name} after the lock was handed over")
