"""`tfbot worker`: one RQ worker taking webhook deliveries, project runs and, when neither waits, notifications
from Redis.

Redis is an execution surface: an RQ job names a dotted function and RQ imports and calls it. A tfbot
worker runs only tfbot's own job functions and callbacks (`bot.jobs.ALLOWED`) and refuses any other
job before importing anything it names. It hands each job the services it built at start (bot/compose.py).
"""
from __future__ import annotations

import logging
import random
import time
import traceback
from functools import partial
from types import TracebackType
from typing import Any, Unpack

import redis
from rq import Queue, SimpleWorker, Worker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.scheduler import RQScheduler
from rq.worker import BaseWorker
from rq.executions import Execution
from rq.job import Job
from rq.serializers import JSONSerializer

from bot import jobs
from bot.config import Config
from bot.adapters.logs import library_level, setup_logging, was_logged
from bot.adapters.preflight import check_git
from bot.state.liveness import start_reaper
from bot.queue import RUNS_QUEUE, notify_queue
from bot.adapters.redis_server import EmbeddedRedis, connect
from bot.ops.stop_signals import StopSignals
from bot.compose import worker_services
from bot.services import WorkerServices

log = logging.getLogger("tfbot.worker")


def refusal(job: Job) -> str | None:
    """Why this job must not run (it names a function tfbot does not offer as a job), or None."""
    try:
        names = {"function": job.func_name, "success callback": job._success_callback_name,
                 "failure callback": job._failure_callback_name, "stopped callback": job._stopped_callback_name}
    except Exception as exc:  # noqa: BLE001 - a job that cannot even be decoded is refused too
        return f"its data cannot be read as a tfbot job ({type(exc).__name__})"
    for what, name in names.items():
        # A job names a job function; a callback names a callback: neither may stand in for the other.
        allowed = jobs.ALLOWED_JOBS if what == "function" else jobs.ALLOWED_CALLBACKS
        if name is not None and name not in allowed:
            return f"its {what} {name!r} is not a tfbot {'job' if what == 'function' else 'callback'} function"
    return None


class WakingScheduler(RQScheduler):
    """RQ's scheduler process (it moves retried jobs whose time has come back to their queue), whose wait between
    two polls ends as soon as it is asked to stop.

    RQ's own sleeps out its interval (1 s) after SIGTERM, and the worker that started it waits for it to exit:
    on average half a second of every stop. Its interval cannot be shortened instead: RQ also uses it as whole
    seconds in its locks' TTL (`interval + 60` in SET EX), and polling more often costs Redis round trips all day.
    """

    def work(self) -> None:
        """rq 3.0's `RQScheduler.work` loop, its wait ended by SIGTERM or SIGINT as `tfbot serve`'s is
        (bot/ops/stop_signals.py)."""
        signals = StopSignals().install()
        self.register_birth()
        while not signals.count:
            if self.should_reacquire_locks:
                self.acquire_locks()  # type: ignore[no-untyped-call]
            self.heartbeat()  # type: ignore[no-untyped-call]
            self.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
            signals.wait(self.interval)  # a signal that came before this wait ends it at once
        self.stop()  # type: ignore[no-untyped-call]  # releases its locks and registers its death, as RQ's does


class _TfbotWorkerBase(BaseWorker):
    """An RQ worker that runs only tfbot's jobs, each with the services it was given, and writes one traceback per
    failure. `services` is the WorkerServices of this process (bot/compose.py)."""

    def __init__(self, queues: list[Queue], services: WorkerServices, **options: Any) -> None:
        super().__init__(queues, job_class=jobs.ServicedJob, **options)
        self.services = services

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        if isinstance(job, jobs.ServicedJob):
            job.services = self.services
        return bool(super().perform_job(job, queue, execution))

    def execute_job(self, job: Job, queue: Queue) -> None:
        reason = refusal(job)
        if reason is None:
            super().execute_job(job, queue)
            return
        # Before the fork and before any import of what the job names: nothing of it runs.
        log.error("refused job %s from queue %s: %s; only tfbot's own jobs run here (is someone else writing to "
                  "tfbot's Redis?)", job.id, queue.name, reason)
        self.handle_job_failure(job, queue, exc_string=f"refused by tfbot: {reason}")

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO",
                         date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
                         log_format: str = DEFAULT_LOGGING_FORMAT) -> None:
        """RQ's own (`BaseWorker._start_scheduler` of rq 3.0) with a `WakingScheduler`: RQ takes no scheduler
        class. A burst worker runs no scheduler process, so RQ's own serves it."""
        if burst:
            super()._start_scheduler(burst, logging_level, date_format, log_format)
            return
        self.scheduler = WakingScheduler(
            self.queues, connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format, log_format=log_format, serializer=self.serializer)
        # One worker among all holds the scheduler's locks and runs it (rq leaves both calls unannotated).
        self.scheduler.acquire_locks()  # type: ignore[no-untyped-call]
        if self.scheduler.acquired_locks:
            self.scheduler.start()  # type: ignore[no-untyped-call]

    def unsubscribe(self) -> None:
        """RQ's own, with its listening thread told to stop before the UNSUBSCRIBE whose reply wakes it. In RQ's
        order the thread can wake first, find itself still running and listen again (for up to 60 s), and the
        worker's exit then waits out RQ's one-second join."""
        if self.pubsub_thread:
            self.pubsub_thread.stop()
        super().unsubscribe()  # type: ignore[no-untyped-call]

    def handle_warm_shutdown_request(self) -> None:
        log.info("worker %s asked to stop: it takes no more jobs and finishes the one it runs", self.name)
        super().handle_warm_shutdown_request()  # type: ignore[no-untyped-call]  # rq leaves it unannotated

    def handle_exception(self, job: Job,
                         *exc_info: Unpack[tuple[type[BaseException], BaseException, TracebackType | None]]) -> None:
        """One line per failed try, saying whether RQ tries it again; the traceback once: on the last try, if nobody
        wrote it."""
        from rq.job_lifecycle import call_exception_handlers

        retried = f"; tried again later ({job.retries_left} attempt(s) left)" if job.should_retry else ""
        if was_logged(exc_info[1]) or job.should_retry:  # the last try writes the traceback
            summary = "".join(traceback.format_exception_only(exc_info[0], exc_info[1])).strip()
            quiet = job.should_retry and job.func_name in jobs.QUIET_RETRIES
            log.log(logging.WARNING if quiet else logging.ERROR, "job %s (%s) failed: %s%s", job.id,
                    job.description, summary, retried)
        else:
            log.error("job %s (%s) failed%s", job.id, job.description, retried, exc_info=exc_info)
        call_exception_handlers(self._exc_handlers, job, *exc_info)


class TfbotWorker(_TfbotWorkerBase, Worker):
    """`tfbot worker`: forks a work horse per job (a job that dies takes only its horse)."""


class TfbotSimpleWorker(_TfbotWorkerBase, SimpleWorker):
    """Runs each job in this process: for tests and tools that drive jobs one by one."""


def resolve_redis_url(config: Config) -> str | None:
    """`redis_url`, or the embedded Redis of a `tfbot serve` on this host sharing data_dir."""
    if config.redis_url:
        return config.redis_url
    embedded = EmbeddedRedis(config.data_dir)
    return embedded.url if embedded.socket.exists() else None


def no_redis(config: Config) -> str:
    """What every command that needs Redis says when `resolve_redis_url` found none."""
    return (f"redis_url is empty and no embedded Redis runs under {config.data_dir}: is `tfbot serve` running on "
            "this host with this config? Start it, or set redis_url / TFBOT_REDIS_URL to a shared Redis")


def wait_for_redis(connection: redis.Redis, max_delay: float = 30.0) -> None:
    """Block until Redis answers, retrying with exponential backoff and jitter (RQ does the same once running)."""
    delay = 1.0
    while True:
        try:
            connection.ping()
            return
        except (redis.RedisError, OSError) as exc:
            wait = delay * random.uniform(0.5, 1.5)
            log.warning("Redis unreachable (%s); retrying in %.1fs", exc, wait)
            time.sleep(wait)
            delay = min(max_delay, delay * 2)


def run_worker(config: Config) -> int:
    setup_logging(config.log_level, config.secrets(), "worker", config.log_format)
    git = check_git()
    if not git.ok:
        log.error("git: %s", git.error)
        return 2
    url = resolve_redis_url(config)
    if url is None:
        log.error("%s", no_redis(config))
        return 2
    connection = connect(url)
    wait_for_redis(connection)
    services = worker_services(config, connection)
    # RQ forks a process per job: import what jobs run now, once, instead of in every fork.
    import bot.lifecycle.handlers  # noqa: F401
    import bot.lifecycle.interrupted  # noqa: F401
    import bot.lifecycle.reporting  # noqa: F401
    import bot.lifecycle.runner  # noqa: F401
    import bot.notify.sending  # noqa: F401
    worker = TfbotWorker(
        # In this order: a worker takes a notification only when no event or run is queued.
        [services.events_queue, services.runs_queue, notify_queue(connection)],
        services,
        connection=connection,
        serializer=JSONSerializer,
        log_job_description=True,
        # A dead worker's job is found by its expired heartbeat (60 s after its last one) during some worker's
        # maintenance. RQ runs maintenance only between waits for jobs, and an idle worker waits worker_ttl - 15 s:
        # keep both short so the PR hears of a lost run within about 1.5 minutes.
        job_monitoring_interval=10,
        worker_ttl=35,
        maintenance_interval=15,
        work_horse_killed_handler=partial(jobs.horse_killed, connection),
    )
    start_reaper(connection, RUNS_QUEUE, jobs.queue_interrupted_report, jobs.beats)
    log.info("worker %s taking jobs", worker.name)
    # The scheduler moves retried jobs (a report waiting out a GitHub outage) back to their queue when due.
    # RQ's own lines (registry clean-up every few seconds, "Job OK") show at DEBUG only.
    worker.work(logging_level=logging.getLevelName(library_level(config.log_level)), with_scheduler=True)
    return 0
