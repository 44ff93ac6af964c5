"""The lock-wait watch of `tfbot serve`: a thread that looks at the locks' waiting lines and emits
lock_waiting_long for PRs that have waited longer than a receiver's `lock_waiting_after`.

It runs only when a receiver wants lock_waiting_long, every quarter of the shortest `lock_waiting_after` (1 s to
60 s: bot.notify.notices.watch_interval). It reads Redis and queues jobs, nothing else. Several hosts may each
watch: every PR and lock is told once per receiver (a mark set with SET NX). A failed look is logged and the next
one tries again; it never stops serve.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import redis

from bot.adapters.redis_server import connect
from bot.compose import job_queue
from bot.config import Config
from bot.notify.emit import notify_lock_waits
from bot.notify.notices import lock_wait_threshold, watch_interval
from bot.services import JobQueue
from bot.state.locks import LockStore

log = logging.getLogger("tfbot.lock-waits")


@dataclass
class _Watch:
    """What a look needs (bot.notify.emit.LockWaitServices): config, Redis, the job queue and the lock store."""

    config: Config
    redis: redis.Redis
    jobs: JobQueue
    locks: LockStore


def start_lock_wait_watch(config: Config, redis_url: str, stop: threading.Event) -> threading.Thread | None:
    """Start the watch thread, which ends when `stop` is set; None when no receiver wants lock_waiting_long."""
    threshold = lock_wait_threshold(config.notifications)
    if threshold is None:
        return None
    thread = threading.Thread(target=_loop, args=(config, redis_url, stop, watch_interval(threshold)),
                              name="tfbot lock-wait watch", daemon=True)
    thread.start()
    return thread


def _loop(config: Config, redis_url: str, stop: threading.Event, interval: float) -> None:
    conn = connect(redis_url)
    watch = _Watch(config=config, redis=conn, jobs=job_queue(config, conn), locks=LockStore(conn))
    while not stop.wait(interval):
        try:
            queued = notify_lock_waits(watch)
        except (redis.RedisError, OSError) as exc:
            log.warning("could not read the locks' waiting lines: %s; trying again in %.0f s", exc, interval)
            continue
        except Exception:  # noqa: BLE001 - a fault in tfbot: logged whole, and the next look tries again
            log.exception("the look at the locks' waiting lines failed; trying again in %.0f s", interval)
            continue
        if queued:
            log.info("lock_waiting_long: %d notification(s) queued", queued)
