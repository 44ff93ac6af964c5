"""Prometheus metrics of one web process: what it counted itself, and what Redis says at scrape time.

Webhook counts and latencies are observed by the web processes: with several (`server.processes`), each counts into
files of Prometheus' multiprocess mode under one directory (`use_multiprocess`), and a scrape, answered by any of
them, sums every process's files. Jobs,
locks and run durations are read from Redis on every scrape, so every host and worker process is
covered and no number is lost when a process restarts. Run durations are gauges over the recent runs
Redis keeps, not a histogram: a worker process would have to count into Redis for a true one.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from bot.state import keys, notified
from bot.state.change_records import ChangeStore
from bot.state.drift_checks import DriftChecks
from bot.queue import EVENTS_QUEUE, NOTIFY_QUEUE, RUNS_QUEUE, notify_queue

if TYPE_CHECKING:
    from bot.services import WebServices

log = logging.getLogger(__name__)

RECENT_RUNS = 500  # how many of the latest runs the duration gauges describe
WEBHOOK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Event names are chosen by whoever sends the request (before its signature is checked): only known names become
# label values, so a flood of made-up events cannot grow the number of series without bound.
KNOWN_EVENTS = frozenset({"ping", "pull_request", "issue_comment", "push", "installation", "installation_repositories",
                          "pull_request_review", "check_suite", "check_run", "status"})


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_multiprocess(directory: Path) -> None:
    """Count this process's (and its forked children's) metrics into files under `directory`, emptied first: the
    web server's master calls it once before forking its workers, so counts of an earlier run never add up.

    prometheus_client picks its value class from PROMETHEUS_MULTIPROC_DIR when it is first imported; it is set here
    and the class chosen again, so the order of imports cannot leave a process counting in memory unseen."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def process_exited(pid: int) -> None:
    """A web worker is gone: drop its live-gauge files (its counts stay, summed into every later scrape)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def event_label(event: str | None) -> str:
    return event if event in KNOWN_EVENTS else "other"


class Metrics:
    """A registry of its own (never the global one), so two apps in one process never share counters.

    In multiprocess mode (`use_multiprocess`) the counters live in the shared files instead, and the registry
    exposes the sum of every process's files through prometheus_client's MultiProcessCollector."""

    def __init__(self, services: WebServices):
        self.registry = CollectorRegistry(auto_describe=True)
        shared = os.environ.get(MULTIPROC_ENV)
        own = None if shared else self.registry
        self.webhooks = Counter("tfbot_webhooks_received", "Webhook deliveries received, by event and outcome",
                                ["event", "outcome"], registry=own)
        self.webhook_seconds = Histogram("tfbot_webhook_handling_seconds",
                                         "Time to answer a webhook delivery (verify, de-duplicate, enqueue)",
                                         ["event"], buckets=WEBHOOK_BUCKETS, registry=own)
        if shared:
            multiprocess.MultiProcessCollector(self.registry, path=shared)  # type: ignore[no-untyped-call]
        self.registry.register(StoreCollector(services))

    def observe_webhook(self, event: str | None, outcome: str, seconds: float) -> None:
        label = event_label(event)
        self.webhooks.labels(event=label, outcome=outcome).inc()
        self.webhook_seconds.labels(event=label).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class StoreCollector:
    """Gauges read from Redis on each scrape: jobs, locks, recent run durations."""

    def __init__(self, services: WebServices):
        self.svc = services

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # read on scrape only: describing would hit Redis at registration

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("tfbot_redis_up", "1 when this scrape could read Redis")
        try:
            families = [self._jobs(), *self._locks(), *self._runs(), self._notifications(), *self._change_records(),
                        self._drift()]
        except (redis.RedisError, OSError) as exc:
            log.warning("metrics: Redis unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _jobs(self) -> GaugeMetricFamily:
        jobs = GaugeMetricFamily("tfbot_jobs", "Jobs by queue and state (queued, running, scheduled, failed)",
                                 labels=["queue", "state"])
        conn = self.svc.redis
        for name, queue in ((EVENTS_QUEUE, self.svc.events_queue), (RUNS_QUEUE, self.svc.runs_queue),
                            (NOTIFY_QUEUE, notify_queue(conn))):
            jobs.add_metric([name, "queued"], queue.count)
            jobs.add_metric([name, "running"], StartedJobRegistry(name, connection=conn).count)
            # Waiting for their time: a run deferred behind a busy project, a report retried through a GitHub outage.
            scheduled = ScheduledJobRegistry(name, connection=conn)  # type: ignore[no-untyped-call]
            jobs.add_metric([name, "scheduled"], scheduled.count)
            jobs.add_metric([name, "failed"], FailedJobRegistry(name, connection=conn).count)
        return jobs

    def _locks(self) -> list[GaugeMetricFamily]:
        locks = self.svc.lock_cache.snapshot().locks  # this process's copy: one small read while nothing changed
        now = time.time()
        held = GaugeMetricFamily("tfbot_locks_held", "Workspace locks held now")
        held.add_metric([], len(locks))
        by_state = GaugeMetricFamily("tfbot_locks_by_state", "Workspace locks held now, by state", labels=["state"])
        counts: dict[str, int] = {}
        for lock in locks:
            counts[lock.state.value] = counts.get(lock.state.value, 0) + 1
        for state, count in sorted(counts.items()):
            by_state.add_metric([state], count)
        oldest = GaugeMetricFamily("tfbot_oldest_lock_age_seconds", "Age of the oldest lock held (0 when none)")
        oldest.add_metric([], max((now - lock.locked_at for lock in locks), default=0.0))
        return [held, by_state, oldest]

    def _notifications(self) -> CounterMetricFamily:
        """Counted into Redis by the workers that send them (bot.state.notified)."""
        total = CounterMetricFamily("tfbot_notifications", "Notifications by receiver kind, event and result (sent; "
                                    "failed: refused or unanswered on its last try; dropped: its receiver left the "
                                    "config)", labels=["kind", "event", "result"])
        for (kind, event, result), value in sorted(notified.counts(self.svc.redis).items()):
            total.add_metric([kind, event, result], value)
        return total

    def _runs(self) -> list[GaugeMetricFamily]:
        conn = self.svc.redis
        ids = conn.lrange(keys.runs(), 0, RECENT_RUNS - 1)
        pipe = conn.pipeline(transaction=False)
        for run_id in ids:
            pipe.hget(keys.run(keys.text(run_id)), "meta")
        durations: dict[str, list[float]] = {}
        outcomes: dict[tuple[str, str], int] = {}
        for raw in pipe.execute() if ids else []:
            if raw is None:
                continue  # expired
            meta = json.loads(raw)
            kind = str(meta.get("kind", "unknown"))
            if isinstance(meta.get("duration"), (int, float)):
                durations.setdefault(kind, []).append(float(meta["duration"]))
            key = (kind, "ok" if meta.get("ok") else "failed")
            outcomes[key] = outcomes.get(key, 0) + 1
        quantiles = GaugeMetricFamily(
            "tfbot_run_duration_seconds",
            f"Duration of the last {RECENT_RUNS} plan/apply runs kept in Redis, by kind and quantile (0 = fastest, 1 = slowest)",
            labels=["kind", "quantile"])
        for kind, values in sorted(durations.items()):
            values.sort()
            for q in ("0", "0.5", "0.9", "0.99", "1"):
                quantiles.add_metric([kind, q], values[min(len(values) - 1, int(float(q) * len(values)))])
        recent = GaugeMetricFamily("tfbot_recent_runs", f"Runs among the last {RECENT_RUNS}, by kind and outcome",
                                   labels=["kind", "outcome"])
        for (kind, outcome), count in sorted(outcomes.items()):
            recent.add_metric([kind, outcome], count)
        return [quantiles, recent]

    def _change_records(self) -> list[GaugeMetricFamily]:
        """Messages of the change-record queue by outcome, counted in Redis by every poller since the counts began
        (a counter kept in Redis, so it is exposed as a gauge that only grows)."""
        if self.svc.config.change_records is None:
            return []
        messages = GaugeMetricFamily("tfbot_change_record_messages",
                                     "Change-record queue messages by outcome (received, recorded, added, ignored, "
                                     "duplicate, malformed, set_aside, gave_up, busy, failed), since counting began",
                                     labels=["outcome"])
        for outcome, count in sorted(ChangeStore(self.svc.redis).counts().items()):
            messages.add_metric([outcome], count)
        return [messages]

    def _drift(self) -> GaugeMetricFamily:
        """Projects by the state of their last drift check (every state, 0 when none): drifted > 0 wants a look."""
        projects = GaugeMetricFamily("tfbot_drift_projects", "Projects by the state of their last drift check "
                                     "(clean, drifted, failed, skipped)", labels=["state"])
        for state, count in DriftChecks(self.svc.redis).counts().items():
            projects.add_metric([state.value], count)
        return projects

