"""The long-lived objects a process needs, built once from the config and passed in (never global)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import redis
from rq import Queue

from bot.config import Config
from bot.adapters.github import GitHubApp
from bot.models import LockInfo, Project
from bot.adapters.preflight import TerraformCheck
from bot.queue import events_queue, runs_queue
from bot.state import keys

if TYPE_CHECKING:
    from bot.state.locks import LockStore
    from bot.state.records import Command


class HasRedis(Protocol):
    """Anything that carries the Redis connection: all a reader of Redis keys needs."""

    @property
    def redis(self) -> redis.Redis: ...


class HasEventsQueue(Protocol):
    """Anything that can queue an event job: web and worker services alike."""

    @property
    def events_queue(self) -> Queue: ...


class UnlockServices(HasRedis, HasEventsQueue, Protocol):
    """What releasing a lock and handing it on needs, in the web process (lock page) or a worker (CLI)."""

    @property
    def locks(self) -> LockStore: ...

    def project_of_lock(self, lock: LockInfo) -> Project: ...


@dataclass
class WebServices:
    """What the web process needs: config, Redis and the queue. Nothing that talks to GitHub or Terraform."""

    config: Config
    redis: redis.Redis
    terraform_check: TerraformCheck
    events_queue: Queue = field(init=False)
    runs_queue: Queue = field(init=False)

    def __post_init__(self) -> None:
        from bot.state.locks import LockStore
        from bot.state.records import Records

        self.events_queue = events_queue(self.redis)
        self.runs_queue = runs_queue(self.redis)
        self.locks = LockStore(self.redis)  # the lock page reads and (for admins) force-releases locks
        self.records = Records(self.redis)  # run logs for /runs/<id>

    def terraform_health(self) -> dict[str, object]:
        return self.terraform_check.as_dict()

    def project_of_lock(self, lock: LockInfo) -> Project:
        """The configured project a lock belongs to, for handing it over after an unlock from the page."""
        return project_of_lock(self.config, lock)


def project_of_lock(config: Config, lock: LockInfo) -> Project:
    """The project a lock belongs to, under today's config (workflow and apply requirements included)."""
    from bot.projects.detection import project_at

    return project_at(lock.repo, config.repo_config(lock.repo), lock.dir, lock.workspace, lock.project)


class WorkerServices:
    """What a worker needs: Redis stores, the GitHub App, git checkouts, plan storage and Terraform.

    Built once per worker process; RQ forks a work horse per job, which inherits it.
    """

    def __init__(self, config: Config, connection: redis.Redis):
        from bot.adapters.git import Checkouts
        from bot.state.locks import LockStore
        from bot.adapters.logs import masker
        from bot.adapters.plan_store import plan_store_for
        from bot.state.records import Records
        from bot.adapters.terraform import Terraform
        from bot.config.workflows import load_workflows

        self.config = config
        self.redis = connection
        self.github = GitHubApp(config.github, connection, keys.installation_token)
        self.events_queue = events_queue(connection)
        self.runs_queue = runs_queue(connection)
        self.locks = LockStore(connection)
        self.records = Records(connection)
        self.checkouts = Checkouts(config.data_dir)
        self.plans = plan_store_for(config)
        self.tmp_dir = config.data_dir / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._masker = masker()
        from bot.adapters.runners import runner_for

        runs = runner_for(config)  # logs auto's fallback; SandboxError when bubblewrap was asked for and cannot run
        self.terraform = Terraform(
            binary=config.terraform.binary, data_dir=config.data_dir, timeout=config.terraform.timeout,
            mask_values=config.secrets(), mask_env=config.terraform.mask_env, runner=runs.runner,
        )
        self.workflows = load_workflows(config.workflows_dir)
        self.bot_login = f"{config.github.app_slug}[bot]"

    @classmethod
    def build(cls, config: Config, connection: redis.Redis) -> WorkerServices:
        return cls(config, connection)

    def mask(self, text: str) -> str:
        """Remove every known secret (config secrets, installation tokens) from text bound for a PR or log."""
        return self.terraform.mask(self._masker.mask(text))

    def run_url(self, run_id: str) -> str:
        base = self.config.server.public_url
        return f"{base}/runs/{run_id}" if base and run_id else ""

    def status_url(self, cmd: Command) -> str:
        return self.config.server.public_url + "/locks" if self.config.server.public_url else ""

    def render_notice(self, kind: str, pull: int, sha: str, text: str) -> str:
        from bot.render.comments import render_notice

        return render_notice(kind, pull, sha, text)

    def project_of_lock(self, lock: LockInfo) -> Project:
        """The configured project a lock belongs to (settings may have changed since it was taken)."""
        return project_of_lock(self.config, lock)
