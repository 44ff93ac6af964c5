"""The long-lived objects a process needs, built once from the config and passed in (never global)."""
from __future__ import annotations

from dataclasses import dataclass, field

import redis
from rq import Queue

from bot.config import Config
from bot.github_api import GitHubApp
from bot.preflight import TerraformCheck
from bot.queue import events_queue, runs_queue


@dataclass
class WebServices:
    """What the web process needs: config, Redis and the queue. Nothing that talks to GitHub or Terraform."""

    config: Config
    redis: redis.Redis
    terraform_check: TerraformCheck
    events_queue: Queue = field(init=False)
    runs_queue: Queue = field(init=False)

    def __post_init__(self) -> None:
        self.events_queue = events_queue(self.redis)
        self.runs_queue = runs_queue(self.redis)

    def terraform_health(self) -> dict[str, object]:
        return self.terraform_check.as_dict()


@dataclass
class WorkerServices:
    """What a worker needs: config, Redis, queues and the GitHub App. Built once per worker process."""

    config: Config
    redis: redis.Redis
    github: "GitHubApp"
    runs_queue: Queue

    @classmethod
    def build(cls, config: Config, connection: redis.Redis) -> "WorkerServices":
        from bot.github_api import GitHubApp

        return cls(config=config, redis=connection, github=GitHubApp(config.github, connection),
                   runs_queue=runs_queue(connection))
