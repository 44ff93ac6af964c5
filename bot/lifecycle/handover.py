"""Releasing a workspace lock and handing it to the next PR in line, which is then planned automatically.

Every release goes through here, whoever asks (a run after the merge's apply, a close, a writer's `unlock`,
an admin's unlock): the lock store's release script refuses atomically what bot/lifecycle/decision.py refuses, and the
PR's saved plans of that project go with its lock.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.models import LockInfo, Project
from bot.render.comments import code_span, escape_text

if TYPE_CHECKING:
    from bot.services import HasJobs, WorkerServices

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


def plan_next(svc: HasJobs, project: Project, waiter: dict[str, Any] | None, reason: str) -> None:
    """Queue the plan of the PR that was just handed the lock, if any."""
    if waiter:
        svc.jobs.plan_waiter(project, int(waiter["pull"]), int(waiter["installation"]), reason)


def unlock_message(by: str, project: str, via: str, next_pull: int | None, mention: bool, reason: str = "") -> str:
    """The PR comment's text after an unlock from the page or the CLI (markdown, values escaped). The reason is
    typed by a person: as code, so it can neither format the comment nor mention anyone."""
    who = f"@{escape_text(by)}" if mention else code_span(by)
    after = (f"The lock goes to #{int(next_pull)}, which tfbot plans now." if next_pull
             else "Nobody was waiting for it.")
    why = f" Reason: {code_span(reason.strip())}." if reason.strip() else ""
    return (f"{who} unlocked {code_span(project)} {via}.{why} The saved plan of this PR for it is discarded; "
            f"{after} Comment `plan` to take the lock again.")


def installation_of(svc: WorkerServices, lock: LockInfo) -> int | None:
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


def announce_unlock(svc: WorkerServices, lock: LockInfo, by: str, via: str, next_pull: int | None,
                    mention: bool, reason: str = "") -> bool:
    """After an admin's unlock (bot/web/unlocking.py): discard the PR's saved plan of that project and comment on
    the PR; False when the PR cannot be told (its installation is unknown)."""
    return _announce_release(svc, lock, unlock_message(by, lock.project, via, next_pull, mention, reason))


def announce_expiry(svc: WorkerServices, lock: LockInfo, after: float, next_pull: int | None) -> bool:
    """After the lock expired (bot/ops/expiry.py): as `announce_unlock`, with why it expired."""
    from bot.lifecycle.expiry import expiry_message

    return _announce_release(svc, lock, expiry_message(code_span(lock.project), after, next_pull))


def _announce_release(svc: WorkerServices, lock: LockInfo, text: str) -> bool:
    drop_plans(svc, svc.project_of_lock(lock), lock.pull)
    installation = installation_of(svc, lock)
    if installation is None:
        log.warning("cannot comment on %s#%d about the release of its lock: its installation id is not recorded",
                    lock.repo, lock.pull)
        return False
    gh = svc.github.repo(installation, lock.repo)
    gh.create_comment(lock.pull, svc.render_notice("unlocked", lock.pull, "", text))
    return True
