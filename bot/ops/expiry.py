"""The lock expiry pass: release the locks whose PRs only planned and then went idle (`locks.expire_after`).

It runs in `tfbot serve`'s recovery pass, on the host that has the period (bot/ops/recovery.py), so every
`interval` (5 minutes) at most once across hosts. Which locks expire is bot/lifecycle/expiry.py's pure rule;
the release is the admin unlock's (bot/web/unlocking.py): token-checked and refused atomically by the lock
store while a run holds the workspace or the lock is apply-related, audited (user `tfbot`), handed to the next
PR in line, which is planned. The PR hears of it from a job (`announce_expiry`), retried while GitHub is down.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import TYPE_CHECKING

from bot.config.durations import describe
from bot.lifecycle.expiry import expired
from bot.models import LockInfo
from bot.web.unlocking import UnlockRefused, release

if TYPE_CHECKING:
    from bot.services import WorkerServices

log = logging.getLogger(__name__)

BY = "tfbot"


def expire_idle_locks(svc: WorkerServices, now: float | None = None,
                      skip: Collection[tuple[str, int]] = ()) -> list[LockInfo]:
    """Release every expired lock (none when `locks.expire_after` is off); return the locks released.

    `now`: unix seconds (default: the clock); `skip`: (repo, PR) pairs left alone, such as PRs the same pass found
    merged and handed to a worker. Redis errors propagate to the caller's pass, which retries later.
    """
    after = svc.config.locks.expire_after
    if not after:
        return []
    now = time.time() if now is None else now
    via = f"after {describe(after)} without a push, comment or run on the PR (locks.expire_after)"
    released = []
    for lock in svc.locks.list():
        if (lock.repo, lock.pull) in skip or not expired(lock, svc.records.last_activity(lock.repo, lock.pull), now, after):
            continue
        try:
            held, waiter = release(svc, lock.repo, lock.dir, lock.workspace, by=BY, via=via, token=lock.token)
        except UnlockRefused as exc:  # a run began meanwhile: not idle after all
            log.info("lock of %s (%s#%d) not expired: %s", lock.project, lock.repo, lock.pull, exc)
            continue
        if held is None:  # released or handed over meanwhile
            continue
        svc.jobs.announce_expiry(held, after, int(waiter["pull"]) if waiter else None)
        log.info("lock of %s expired: %s#%d had been idle %s; %s", held.project, held.repo, held.pull,
                 describe(after), f"handed to #{waiter['pull']}" if waiter else "nobody waited for it")
        released.append(held)
    return released
