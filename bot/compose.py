"""The composition root: every tfbot process builds its services here, once, from the config.

`tfbot worker` calls `worker_services`, the web process `web_services`, the admin commands (`tfbot unlock`,
`tfbot reconcile`) and `tfbot serve`'s recovery `worker_services`. Nothing below builds an adapter of its own
or looks services up: it is handed what it needs.
"""
from __future__ import annotations

import redis

from bot.adapters.github_oauth import GitHubOAuth
from bot.adapters.github_roles import RepoRoles
from bot.adapters.logs import masker
from bot.adapters.preflight import TerraformCheck, check_terraform, reported_version
from bot.config import Config
from bot.jobs import RQJobs, run_timeout
from bot.projects.versions import Binaries, Binary
from bot.queue import events_queue, runs_queue
from bot.services import WebServices, WorkerServices
from bot.state import keys
from bot.state.deliveries import Deliveries
from bot.state.lock_cache import LockCache
from bot.state.locks import LockStore
from bot.state.records import Records


def job_queue(config: Config, connection: redis.Redis) -> RQJobs:
    """The queue of tfbot's jobs on `connection`."""
    return RQJobs(connection, run_timeout(config.terraform.timeout))


def web_services(config: Config, connection: redis.Redis, terraform_check: TerraformCheck | None = None) -> WebServices:
    """The web process's services: stores and queues on `connection`. `terraform_check` (for /healthz) is made
    here, running `terraform version` once, unless given."""
    if terraform_check is None:
        terraform_check = check_terraform(config.terraform.binary, config.data_dir, config.terraform.sandbox.mode)
    locks = LockStore(connection)
    sign_in = config.github.sign_in
    return WebServices(
        config=config, redis=connection, jobs=job_queue(config, connection), locks=locks,
        records=Records(connection), events_queue=events_queue(connection), runs_queue=runs_queue(connection),
        terraform_check=terraform_check, lock_cache=LockCache(locks), deliveries=Deliveries(connection),
        github_oauth=GitHubOAuth(config.github) if sign_in else None,
        github_roles=RepoRoles(config.github) if sign_in else None)


def installed_binaries(config: Config, default_version: str) -> Binaries:
    """The binaries projects run with: `terraform.binary` (which reported `default_version`; "" when it could not)
    and those of `terraform.binaries` and `tofu.binaries`, whose keys startup checked against what they report."""
    extra = [Binary("terraform", version, path) for version, path in config.terraform.binaries.items()]
    extra += [Binary("opentofu", version, path) for version, path in config.tofu.binaries.items()]
    return Binaries(Binary("terraform", default_version, config.terraform.binary), tuple(extra))


def worker_services(config: Config, connection: redis.Redis) -> WorkerServices:
    """A worker's services. Raises WorkflowError for a bad workflow file, PlanStoreError for a bad plan store,
    SandboxError when `terraform.sandbox.mode: bubblewrap` cannot run here (`auto` falls back with a warning)."""
    # Imported here, not at the top: the web process never builds these, and PyGithub alone is about 20 MiB in each
    # process that imports it.
    from bot.adapters.git import Checkouts
    from bot.adapters.github import GitHubApp
    from bot.adapters.plan_store import plan_store_for
    from bot.adapters.runners import runner_for
    from bot.adapters.terraform import Terraform
    from bot.config.workflows import load_workflows

    runs = runner_for(config)
    tmp_dir = config.data_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    # The default binary's version, once per worker: it joins the installed versions projects choose from.
    version = reported_version(config.terraform.binary, config.data_dir)
    return WorkerServices(
        config=config, redis=connection, jobs=job_queue(config, connection), locks=LockStore(connection),
        records=Records(connection), events_queue=events_queue(connection), runs_queue=runs_queue(connection),
        github=GitHubApp(config.github, connection, keys.installation_token),
        checkouts=Checkouts(config.data_dir),
        plans=plan_store_for(config),
        terraform=Terraform(
            binary=config.terraform.binary, data_dir=config.data_dir, timeout=config.terraform.timeout,
            mask_values=config.secrets(), mask_env=config.terraform.mask_env, runner=runs.runner, version=version),
        workflows=load_workflows(config.workflows_dir),
        masker=masker(),
        tmp_dir=tmp_dir,
        binaries=installed_binaries(config, version))
