"""`tfbot worker`: one RQ worker taking webhook deliveries and project runs from Redis."""
from __future__ import annotations

import logging

import redis
from rq import Worker
from rq.serializers import JSONSerializer

from bot import jobs
from bot.config import Config
from bot.logs import setup_logging
from bot.queue import events_queue, runs_queue
from bot.redis_server import EmbeddedRedis, connect

log = logging.getLogger("tfbot.worker")


def resolve_redis_url(config: Config) -> str | None:
    """`redis_url`, or the embedded Redis of a `tfbot serve` on this host sharing data_dir."""
    if config.redis_url:
        return config.redis_url
    embedded = EmbeddedRedis(config.data_dir)
    return embedded.url if embedded.socket.exists() else None


def run_worker(config: Config) -> int:
    setup_logging(config.log_level, config.secrets(), "worker")
    url = resolve_redis_url(config)
    if url is None:
        log.error(
            "redis_url is empty and no embedded Redis runs under %s: start `tfbot serve` on this host first, "
            "or set redis_url / TFBOT_REDIS_URL to a shared Redis",
            config.data_dir,
        )
        return 2
    connection = connect(url)
    try:
        connection.ping()
    except (redis.RedisError, OSError) as exc:
        log.error("cannot reach Redis: %s", exc)
        return 2
    from bot.services import WorkerServices

    jobs.set_services(WorkerServices.build(config, connection))
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
    log.info("worker %s taking jobs", worker.name)
    worker.work(logging_level=config.log_level, with_scheduler=False)
    return 0
