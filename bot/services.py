"""What each kind of tfbot process holds: typed bundles of long-lived objects, built once by bot/compose.py and
passed down explicitly (there is no global to look them up in).

The flow names what it touches through these types: a function taking `HasJobs` can queue jobs and nothing
else; one taking `WorkerServices` may talk to GitHub and run Terraform. `JobQueue` is the seam between the
flow and RQ: the flow asks for a job by meaning, bot/jobs.py decides how it is queued.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import redis
from rq import Queue

from bot.config import Config
from bot.models import LockInfo, Project

if TYPE_CHECKING:
    from redis.client import Pipeline

    from bot.intake.webhooks import RawJSON
    from bot.adapters.git import Checkouts
    from bot.adapters.github import GitHubApp
    from bot.adapters.github_oauth import GitHubOAuth
    from bot.adapters.github_roles import RepoRoles
    from bot.adapters.logs import SecretMasker
    from bot.adapters.plan_store import PlanStore
    from bot.adapters.preflight import TerraformCheck
    from bot.adapters.terraform import Terraform
    from bot.config.workflows import Workflow
    from bot.projects.versions import Binaries
    from bot.state.deliveries import Deliveries
    from bot.state.lock_cache import LockCache
    from bot.state.locks import LockStore
    from bot.state.records import Command, Records


class JobQueue(Protocol):
    """Queues the jobs of bot/jobs.py; each runs later in a worker. Every argument must be JSON-serializable."""

    def handle_delivery(self, delivery_id: str, event: str, payload: dict[str, Any] | RawJSON,
                        pipeline: Pipeline | None = None) -> str:
        """A verified webhook delivery (its payload parsed, or its body as received: `RawJSON`); returns the job id.
        With `pipeline`, the job's writes are only recorded there, for the caller to send (bot.state.deliveries)."""
        ...

    def run_project(self, cmd: Command, project: Project) -> None:
        """One project of a command (plan, apply or merge)."""
        ...

    def report_command(self, command_id: str) -> None:
        """The comment and status of a command whose projects all have results."""
        ...

    def replan(self, project: Project, pull: int, installation: int, why: str) -> None:
        """A fresh plan of one project of a PR on its current head."""
        ...

    def plan_waiter(self, project: Project, pull: int, installation: int, reason: str) -> None:
        """The plan of a PR that was just handed the lock of `project`."""
        ...

    def announce_unlock(self, lock: LockInfo, by: str, via: str, next_pull: int | None, reason: str = "") -> None:
        """The comment telling the PR that held `lock` that `by` unlocked it, and the `reason` they gave."""
        ...

    def announce_expiry(self, lock: LockInfo, after: float, next_pull: int | None) -> None:
        """The comment telling the PR that held `lock` that it expired after `after` idle seconds."""
        ...

    def send_notification(self, index: int, receiver: str, notice: dict[str, Any], delivery: str) -> None:
        """One notification (bot.notify.notices.Notice.to_dict) for receiver `index` of `notifications`, whose
        receiver_id is `receiver`; `delivery` is the X-Tfbot-Delivery id every try sends."""
        ...

    def check_drift(self, project: Project, reason: str, link: str) -> None:
        """The drift check of `project`, asked for because `reason` (a change record at `link`)."""
        ...

    def apply_drift(self, repo: str, installation: int, issue: int, author: str, comment_url: str) -> None:
        """`author`'s `apply` commented on drift issue `issue` (at `comment_url`): bot/drift/apply.py."""
        ...

    def index_states(self) -> None:
        """Reading every project's state for the resources change records name."""
        ...


class HasRedis(Protocol):
    """Anything that carries the Redis connection: all a reader of Redis keys needs."""

    @property
    def redis(self) -> redis.Redis: ...


class HasJobs(Protocol):
    """Anything that can queue jobs: web and worker services alike."""

    @property
    def jobs(self) -> JobQueue: ...


class UnlockServices(HasRedis, HasJobs, Protocol):
    """What releasing a lock and handing it on needs, in the web process (lock page) or a worker (CLI)."""

    @property
    def locks(self) -> LockStore: ...

    def project_of_lock(self, lock: LockInfo) -> Project: ...


def project_of_lock(config: Config, lock: LockInfo) -> Project:
    """The project a lock belongs to, under today's config (workflow and apply requirements included)."""
    from bot.projects.detection import project_at

    return project_at(lock.repo, config.repo_config(lock.repo), lock.dir, lock.workspace, lock.project)


@dataclass
class WebServices:
    """What the web process holds: config, Redis, the lock and run stores, the queues. Nothing that talks to GitHub
    or runs Terraform: a request reads state, releases a lock or queues a job, and answers."""

    config: Config
    redis: redis.Redis
    jobs: JobQueue
    locks: LockStore
    records: Records
    events_queue: Queue  # read for /metrics
    runs_queue: Queue
    terraform_check: TerraformCheck
    lock_cache: LockCache  # what the page, its JSON and /metrics read: this process's copy of every lock
    deliveries: Deliveries  # intake's de-duplication and enqueue of a delivery, in one round trip
    # Sign in with GitHub (None unless github.client_id and client_secret are set): the OAuth code exchange, and
    # users' roles on repositories asked as the App with a read-only token; neither runs anything.
    github_oauth: GitHubOAuth | None = None
    github_roles: RepoRoles | None = None

    def terraform_health(self) -> dict[str, object]:
        return self.terraform_check.as_dict()

    def project_of_lock(self, lock: LockInfo) -> Project:
        """The configured project a lock belongs to, for handing it over after an unlock from the page."""
        return project_of_lock(self.config, lock)


@dataclass
class WorkerServices:
    """What a worker holds: Redis stores, the GitHub App, git checkouts, plan storage and Terraform (`terraform` runs
    the default binary; `binaries` lists every binary a project may be run with).

    Built once per worker process; RQ forks a work horse per job, which inherits it.
    """

    config: Config
    redis: redis.Redis
    jobs: JobQueue
    locks: LockStore
    records: Records
    events_queue: Queue
    runs_queue: Queue
    github: GitHubApp
    checkouts: Checkouts
    plans: PlanStore
    terraform: Terraform
    workflows: dict[str, Workflow]
    masker: SecretMasker
    tmp_dir: Path  # private scratch space under data_dir
    binaries: Binaries

    @property
    def bot_login(self) -> str:
        """The App's user on GitHub (`<slug>[bot]`), whose comments tfbot recognises as its own."""
        return f"{self.config.github.app_slug}[bot]"

    def mask(self, text: str) -> str:
        """Remove every known secret (config secrets, installation tokens) from text bound for a PR or log."""
        return self.terraform.mask(self.masker.mask(text))

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
