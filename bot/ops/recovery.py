"""The recovery pass of `tfbot serve`: redeliver missed webhooks; reconcile locks and missed merges.

It runs in a background thread of the supervisor, first when the web server answers (a redelivered event
must find it listening), then every `interval` seconds. With several `tfbot serve` hosts on one Redis, a
periodic pass runs on one host per period: the one that first sets `recovery:due` (SET NX EX). A host that
starts always runs a pass, since that is when its view may be stale. Passes that overlap are harmless: each
redelivery and each reconciled PR is claimed in Redis before it is acted on.

Reconciliation (bot.ops.reconcile: locks of closed PRs, merges never handled) runs after a start and then every
period on the host that has the period; a host that started also goes on each period until one of its passes
asked GitHub without an error. Lock expiry (bot.ops.expiry, when `locks.expire_after` is set) runs on the host
that has the period. A failure of either part is logged and retried next period; it never stops serve.
"""
from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from typing import Callable, Sequence

import redis

from bot.state import github_health, keys
from bot.config import Config
from bot.adapters.github import GitHubApp, GitHubError
from bot.ops.expiry import expire_idle_locks
from bot.ops.reconcile import AT_STARTUP, PERIODIC, Action, Reconciled, reconcile
from bot.ops.redelivery import redeliver_missed
from bot.adapters.logs import SecretMasker
from bot.adapters.redis_server import connect
from bot.compose import worker_services
from bot.services import WorkerServices

log = logging.getLogger("tfbot.recovery")

INTERVAL_SECONDS = 300.0
WEB_WAIT_SECONDS = 120.0


class Recovery:
    """Runs recovery passes for one `tfbot serve` against one Redis."""

    def __init__(self, config: Config, conn: redis.Redis, interval: float = INTERVAL_SECONDS,
                 services: Callable[[], WorkerServices] | None = None,
                 reconcile_pass: Callable[..., list[Reconciled]] = reconcile):
        self.config = config
        self.conn = conn
        self.interval = interval
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.github = GitHubApp(config.github, conn, keys.installation_token)
        self._services_factory = services
        self._services: WorkerServices | None = None
        self.reconcile_pass = reconcile_pass
        self.reconciled = False  # a reconciliation pass since this start asked GitHub without an error
        self.acted: set[tuple[str, int]] = set()  # (repo, PR) the last reconciliation handed on

    def run_pass(self, startup: bool = False) -> bool:
        """Redeliver and reconcile unless another host has this period (then False); after a start, reconcile each
        period until a pass is clean."""
        # A claim shorter than the period lets the host whose timer fires first after it take the next one.
        hold = max(1, int(self.interval * 0.8))
        try:
            if startup:
                self.conn.set(keys.recovery_due(), self.owner, ex=hold)
                leader = True
            else:
                leader = bool(self.conn.set(keys.recovery_due(), self.owner, nx=True, ex=hold))
        except (redis.RedisError, OSError) as exc:
            log.error("recovery pass skipped: Redis unavailable (%s); trying again in %.0f s", exc, self.interval)
            return False
        if leader:
            self._redeliver()
        if leader or not self.reconciled:
            self._reconcile(AT_STARTUP if startup else PERIODIC)
        if leader:
            self._expire()
        return leader

    def _expire(self) -> None:
        if not self.config.locks.expire_after:
            return
        try:
            expire_idle_locks(self.services(), skip=self.acted)
        except (redis.RedisError, OSError) as exc:
            log.error("lock expiry failed: %s; trying again in %.0f s", exc, self.interval)
        except Exception:  # noqa: BLE001 - a fault in tfbot: logged whole, and the next period tries again
            log.exception("lock expiry failed; trying again in %.0f s", self.interval)

    def _redeliver(self) -> None:
        try:
            report = redeliver_missed(self.github, self.conn)
        except (GitHubError, redis.RedisError, OSError) as exc:
            log.error("redelivery of missed webhooks failed: %s; trying again in %.0f s", exc, self.interval)
            if not isinstance(exc, redis.RedisError):
                _github_health(self.conn, f"{type(exc).__name__}: {exc}", self.config)
            return
        except Exception:  # noqa: BLE001 - a fault in tfbot: logged whole, and the next period tries again
            log.exception("redelivery of missed webhooks failed; trying again in %.0f s", self.interval)
            return
        # The deliveries were listed, so GitHub answered the App; a redelivery it refused is not the App's health.
        _github_health(self.conn, "", self.config)
        level = logging.INFO if report.asked or report.errors else logging.DEBUG
        log.log(level, "redelivery: %s", report.summary())

    def _reconcile(self, origin: str) -> None:
        try:
            results = self.reconcile_pass(self.services(), origin=origin)
        except (GitHubError, redis.RedisError, OSError) as exc:
            log.error("reconciliation of locks failed: %s; trying again in %.0f s", exc, self.interval)
            return
        except Exception:  # noqa: BLE001 - a fault in tfbot: logged whole, and the next period tries again
            log.exception("reconciliation of locks failed; trying again in %.0f s", self.interval)
            return
        self.reconciled = not any(r.action is Action.ERROR for r in results)
        # A PR found closed or merged here is being handled: its locks are not idle, whatever their age.
        self.acted = {(r.repo, r.pull) for r in results if r.action in (Action.RELEASE, Action.QUEUED)}
        log.info("%s", reconciliation_summary(results, self.interval))

    def services(self) -> WorkerServices:
        """What the closed handler and the merge command need: the worker's services, built once."""
        if self._services is None:
            if self._services_factory is not None:
                self._services = self._services_factory()
            else:
                self._services = worker_services(self.config, self.conn)
        return self._services


def start_recovery(config: Config, redis_url: str, stop: threading.Event,
                   interval: float = INTERVAL_SECONDS) -> threading.Thread:
    """Start the recovery thread of `tfbot serve`; it ends when `stop` is set."""
    thread = threading.Thread(target=_loop, args=(config, redis_url, stop, interval), name="tfbot recovery",
                              daemon=True)
    thread.start()
    return thread


def _loop(config: Config, redis_url: str, stop: threading.Event, interval: float) -> None:
    try:
        _wait_for_web(config.server.host, config.server.port, stop)
        recovery = Recovery(config, connect(redis_url), interval)
        startup = True
        while not stop.is_set():
            recovery.run_pass(startup=startup)
            startup = False
            # Jitter keeps hosts started together from reaching for the period at the same moment.
            if stop.wait(interval * random.uniform(0.9, 1.1)):
                break
    except Exception:  # noqa: BLE001 - never take serve down; say loudly that recovery stopped
        log.exception("the recovery thread stopped: missed webhooks are not redelivered until tfbot restarts")


def _wait_for_web(host: str, port: int, stop: threading.Event) -> None:
    """Until the web server accepts connections (or WEB_WAIT_SECONDS pass): redeliveries need it listening."""
    target = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    deadline = time.monotonic() + WEB_WAIT_SECONDS
    while time.monotonic() < deadline and not stop.is_set():
        try:
            with socket.create_connection((target, port), timeout=1):
                return
        except OSError:
            stop.wait(0.2)
    log.warning("the web server did not answer on %s:%d; recovery runs anyway", target, port)


def reconciliation_summary(results: Sequence[Reconciled], interval: float) -> str:
    """Pure: the one log line of a reconciliation pass. A result of PR 0 is a repository (or the App's list of
    repositories) GitHub could not tell about, not a PR."""
    pulls = [r for r in results if r.pull]
    acted = [r for r in pulls if r.action in (Action.RELEASE, Action.QUEUED)]
    unchecked = [r for r in pulls if r.action is Action.ERROR]
    unlisted = [r for r in results if not r.pull and r.action is Action.ERROR]
    line = f"reconciliation: {len(pulls)} PR(s) looked at; {len(acted)} acted on"
    if unchecked:
        line += f"; {len(unchecked)} PR(s) could not be checked"
    if unlisted:
        line += "; could not list " + ", ".join(
            "the App's repositories" if r.repo == "*" else f"the merged PRs of {r.repo}" for r in unlisted)
    if unchecked or unlisted:
        line += f"; trying again in {interval:.0f} s"
    return line


def _github_health(conn: redis.Redis, error: str, config: Config) -> None:
    """Keep whether GitHub answered the App (for `/healthz`); a Redis failure here is the next pass's to see."""
    try:
        github_health.record(conn, SecretMasker(config.secrets()).mask(error) if error else "")
    except (redis.RedisError, OSError):
        pass
