"""`tfbot worker`: one RQ worker taking webhook deliveries and project runs from Redis."""
from __future__ import annotations

import logging
import random
import time

import redis
from rq import Worker
from rq.serializers import JSONSerializer

from bot import jobs
from bot.config import Config
from bot.logs import setup_logging
from bot.preflight import check_git
from bot.liveness import start_reaper
from bot.queue import RUNS_QUEUE, events_queue, runs_queue
from bot.redis_server import EmbeddedRedis, connect

log = logging.getLogger("tfbot.worker")


def resolve_redis_url(config: Config) -> str | None:
    """`redis_url`, or the embedded Redis of a `tfbot serve` on this host sharing data_dir."""
    if config.redis_url:
        return config.redis_url
    embedded = EmbeddedRedis(config.data_dir)
    return embedded.url if embedded.socket.exists() else None


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
    setup_logging(config.log_level, config.secrets(), "worker")
    git = check_git()
    if not git.ok:
        log.error("git: %s", git.error)
        return 2
    url = resolve_redis_url(config)
    if url is None:
        log.error(
            "redis_url is empty and no embedded Redis runs under %s: start `tfbot serve` on this host first, "
            "or set redis_url / TFBOT_REDIS_URL to a shared Redis",
            config.data_dir,
        )
        return 2
    connection = connect(url)
    wait_for_redis(connection)
    from bot.services import WorkerServices

    jobs.set_services(WorkerServices.build(config, connection))
    # RQ forks a process per job: import what jobs run now, once, instead of in every fork.
    import bot.handlers  # noqa: F401
    import bot.interrupted  # noqa: F401
    import bot.reporting  # noqa: F401
    import bot.runner  # noqa: F401
    worker = Worker(
        [events_queue(connection), runs_queue(connection)],
        connection=connection,
        serializer=JSONSerializer,
        log_job_description=True,
        # A dead worker's job is found by its expired heartbeat (60 s after its last one) during some worker's
        # maintenance. RQ runs maintenance only between waits for jobs, and an idle worker waits worker_ttl - 15 s:
        # keep both short so the PR hears of a lost run within about 1.5 minutes.
        job_monitoring_interval=10,
        worker_ttl=35,
        maintenance_interval=15,
        work_horse_killed_handler=jobs.horse_killed,
    )
    start_reaper(connection, RUNS_QUEUE, jobs.queue_interrupted_report)
    log.info("worker %s taking jobs", worker.name)
    # The scheduler moves retried jobs (a report waiting out a GitHub outage) back to their queue when due.
    worker.work(logging_level=config.log_level, with_scheduler=True)
    return 0
