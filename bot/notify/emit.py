"""Emitting notices: queue one send job per receiver that wants a notice. Never raises: a notification that cannot
be queued is logged, and the run, comment or lock that emitted it goes on as if there were no receivers.

`notify(svc, Notice(...))` is what every emitter calls: applies (`notify_applies`, from the command's report), PRs
waiting long for a lock (`notify_lock_waits`, a periodic pass of `tfbot serve`), and drift detection.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Callable, Iterable, Protocol

from bot.notify.notices import (Notice, apply_notices, describe_receiver, lock_wait_threshold, receiver_id,
                                receivers_for, waiting_notices)
from bot.services import HasJobs, HasRedis
from bot.state import notified

if TYPE_CHECKING:
    from bot.config import Config
    from bot.models import ProjectResult
    from bot.state.locks import LockStore
    from bot.state.records import Command

log = logging.getLogger(__name__)


class NotifyServices(HasRedis, HasJobs, Protocol):
    """What emitting needs: the receivers (config), Redis for once-only marks, the job queue. Worker and web
    services have it."""

    @property
    def config(self) -> Config: ...


class LockWaitServices(NotifyServices, Protocol):
    """And the lock store, to read the waiting lines."""

    @property
    def locks(self) -> LockStore: ...


def notify(svc: NotifyServices, notice: Notice) -> int:
    """Queue `notice` for every receiver that wants it (bot.notify.notices.receivers_for); a once-only notice
    (`notice.key`) only for receivers that were not sent it yet. Returns how many sends were queued; never raises."""
    receivers = svc.config.notifications
    try:
        wanted = receivers_for(notice, receivers)
    except Exception:  # noqa: BLE001 - a notification never fails what emitted it
        log.exception("could not choose the receivers of the %s notification of %s", notice.event, notice.repo)
        return 0
    queued = 0
    for index in wanted:
        receiver = receivers[index]
        rid = receiver_id(receiver)
        marked = False
        try:
            if notice.key and not notified.first_time(svc.redis, rid, notice.event, notice.key):
                continue
            marked = bool(notice.key)
            svc.jobs.send_notification(index, rid, notice.to_dict(), str(uuid.uuid4()))
            queued += 1
        except Exception as exc:  # noqa: BLE001 - as above; Redis down is the usual cause
            if marked:  # not queued after all: the next report of this result tries again
                try:
                    notified.forget(svc.redis, rid, notice.event, notice.key)
                except Exception:  # noqa: BLE001 - Redis is down: the mark expires with its TTL
                    pass
            log.error("could not queue the %s notification of %s for %s: %s: %s", notice.event, notice.repo,
                      describe_receiver(index, receiver), type(exc).__name__, exc)
    return queued


def notify_applies(svc: NotifyServices, cmd: Command, results: Iterable[ProjectResult],
                   run_url: Callable[[str], str] | None = None) -> int:
    """apply_succeeded / apply_failed for each project `cmd` applied or failed to apply; once each, however often
    the command's report is retried. `run_url` (run id -> link to its log) defaults to no link."""
    if not svc.config.notifications or cmd.kind == "plan":
        return 0
    try:
        notices = apply_notices(cmd, results, run_url or (lambda run_id: ""), time.time())
    except Exception:  # noqa: BLE001 - a notification never fails the report
        log.exception("could not make the apply notifications of %s#%d", cmd.repo, cmd.pull)
        return 0
    return sum(notify(svc, notice) for notice in notices)


def notify_lock_waits(svc: LockWaitServices, now: float | None = None) -> int:
    """lock_waiting_long for every PR that has waited in a lock's line at least as long as a receiver asks; once per
    PR, lock and receiver. Reads the locks and their lines; returns how many sends were queued."""
    threshold = lock_wait_threshold(svc.config.notifications)
    if threshold is None:
        return 0
    lines = [(lock, svc.locks.queue(lock)) for lock in svc.locks.list()]
    notices = waiting_notices(((lock, line) for lock, line in lines if line), time.time() if now is None else now,
                              threshold)
    return sum(notify(svc, notice) for notice in notices)
