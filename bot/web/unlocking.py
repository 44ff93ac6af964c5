"""An admin unlocks a workspace from the lock page or with `tfbot unlock`: release, hand over, audit, tell the PR.

Releasing is immediate and needs only Redis (`release`). Telling the PR needs GitHub: the page queues
`announce_job` for a worker (nothing slow happens in a web request), the CLI calls `announce` itself.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, fields
from typing import Any

from bot import audit
from bot.handover import plan_next
from bot.models import LockInfo, LockState, Project
from bot.queue import enqueue_event
from bot.render import code_span, escape_text

log = logging.getLogger(__name__)

FROM_PAGE = "from the lock page"
FROM_CLI = "with the tfbot command line"


def release(svc: Any, repo: str, dir: str, workspace: str, by: str, via: str,
            token: int | None = None) -> tuple[LockInfo | None, dict[str, Any] | None]:
    """Force-release the lock (only the one under `token` when given); hand it to the next PR in line.

    Returns (the released lock, the waiter it was handed to) or (None, None) when nothing was released:
    the workspace was free, or its lock changed hands since `token` was read. `svc` needs `locks`,
    `redis`, `events_queue` and `project_of_lock`.
    """
    target = Project(repo=repo, name=dir, dir=dir, workspace=workspace)
    current = svc.locks.get(target)
    if current is not None and current.state == LockState.APPLYING:
        log.warning("%s could not unlock %s of %s: an apply is running", by, current.project, repo)
        return None, None  # the apply's outcome must reach its PR first
    result = svc.locks.force_release(target, by, token=token)
    if not result.released or result.previous is None:
        return None, None
    held = result.previous
    project = svc.project_of_lock(held)
    audit.record(svc.redis, audit.AuditEntry(
        action="unlock", repo=held.repo, pull=held.pull, project=held.project, user=by,
        detail=f"unlocked {via}" + (f"; handed to #{result.next_waiter['pull']}" if result.next_waiter else ""),
        run_id=held.run_id))
    log.info("%s unlocked %s of %s#%d %s", by, held.project, held.repo, held.pull, via)
    plan_next(svc, project, result.next_waiter, reason=f"{by} unlocked it {via}")
    return held, result.next_waiter


def unlock_message(by: str, project: str, via: str, next_pull: int | None, mention: bool) -> str:
    """The PR comment's text (markdown, values escaped)."""
    who = f"@{escape_text(by)}" if mention else code_span(by)
    after = (f"The lock goes to #{int(next_pull)}, which tfbot plans now." if next_pull
             else "Nobody was waiting for it.")
    return (f"{who} unlocked {code_span(project)} {via}. The saved plan of this PR for it is discarded; "
            f"{after} Comment `plan` to take the lock again.")


def installation_of(svc: Any, lock: LockInfo) -> int | None:
    """The GitHub App installation of the lock's repository: from the PR record, else from its latest run."""
    recorded = svc.records.pull_field(lock.repo, lock.pull, "installation")
    if recorded:
        return int(recorded)
    found = svc.records.run(lock.run_id) if lock.run_id else None
    if found and found[0].get("command_id"):
        try:
            return int(svc.records.command(found[0]["command_id"]).installation)
        except KeyError:
            return None
    return None


def announce(svc: Any, lock: LockInfo, by: str, via: str, next_pull: int | None, mention: bool) -> bool:
    """Discard the PR's saved plan of that project and comment on the PR; False when the PR cannot be told.

    `svc` is a WorkerServices (GitHub App, records, plan store).
    """
    project = svc.project_of_lock(lock)
    plan = svc.records.plan(project, lock.pull)
    if plan is not None:
        svc.plans.delete(plan.key)
        svc.records.delete_plan(project, lock.pull)
    installation = installation_of(svc, lock)
    if installation is None:
        log.warning("cannot comment on %s#%d about the unlock: its installation id is not recorded",
                    lock.repo, lock.pull)
        return False
    text = unlock_message(by, lock.project, via, next_pull, mention)
    gh = svc.github.repo(installation, lock.repo)
    gh.create_comment(lock.pull, svc.render_notice("unlocked", lock.pull, "", text))
    return True


def announce_job(lock: dict[str, Any], by: str, via: str, next_pull: int | None) -> bool:
    """RQ job queued by the lock page: `announce` in a worker, with the worker's services."""
    from bot.jobs import services

    return announce(services(), lock_from_dict(lock), by, via, next_pull, mention=True)


def lock_to_dict(lock: LockInfo) -> dict[str, Any]:
    return {**asdict(lock), "state": lock.state.value}


def lock_from_dict(data: dict[str, Any]) -> LockInfo:
    known = {f.name for f in fields(LockInfo)}
    values = {k: v for k, v in data.items() if k in known}
    return LockInfo(**{**values, "state": LockState(values["state"])})


def queue_announcement(svc: Any, lock: LockInfo, by: str, via: str, waiter: dict[str, Any] | None) -> None:
    """Queue `announce_job` on the events queue (JSON arguments only, like every tfbot job)."""
    enqueue_event(svc.events_queue, "bot.web.unlocking.announce_job",
                  (lock_to_dict(lock), by, via, int(waiter["pull"]) if waiter else None),
                  f"tell {lock.repo}#{lock.pull} that {by} unlocked {lock.project}", report_failure=False)
