"""The state index of change records: which resources each project's Terraform state holds, read in a worker
job (`index_states`) once per `change_records.state_refresh`, never per event.

For every repository the App is installed on whose `repos[]` entry leaves `change_records` on, the default
branch's tip is fetched and its projects found as a PR's would be (the declared ones, its `tfbot.yaml`'s, or its
roots). For each project, its backend block (bot/changes/state_ids.py) goes alone into a scratch directory, the
backend is initialised without any provider, and `terraform state pull` reads the state, with the project's plan
credentials and in the sandbox, like a plan. The identifiers found replace the project's set in Redis, which
expires after three periods: a project whose state cannot be read any more stops being named.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.adapters.git import CheckoutError
from bot.adapters.github import GitHubError
from bot.adapters.terraform import TerraformError
from bot.changes.state_ids import NoReadableBackend, backend_of, state_ids
from bot.lifecycle.default_branch import fetch_tip, projects_at
from bot.lifecycle.run_env import run_environment
from bot.lifecycle.runner import project_slug
from bot.models import Project
from bot.projects.paths import is_tf_file, tf_dir_of
from bot.state.change_records import ChangeStore

if TYPE_CHECKING:
    from bot.config.models import RepoConfig
    from bot.services import WorkerServices

log = logging.getLogger("tfbot.changes")
RUN_ID = "state-index"  # in the STS session name of the reads: `<repo>-pr0-plan-state-index`


@dataclass
class IndexReport:
    """What one reading of the states did: projects read, skipped (no backend tfbot can read) and failed."""

    repos: int = 0
    read: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        line = (f"change records: read the state of {len(self.read)} project(s) in {self.repos} repositories; "
                f"{len(self.skipped)} without a state tfbot can read; {len(self.failed)} failed")
        return line + "".join(f"\n  failed: {f}" for f in self.failed)


def refresh_state_index(svc: WorkerServices) -> IndexReport:
    """Read every project's state; raises GitHubError only when the App's repositories cannot be listed."""
    report = IndexReport()
    if svc.config.change_records is None:
        return report
    ttl = svc.config.change_records.state_refresh * 3
    store = ChangeStore(svc.redis)
    for installation, repo in svc.github.installed_repos():
        server = svc.config.repo_config(repo)
        if server is None or not server.change_records:
            continue
        report.repos += 1
        try:
            sha, projects = _projects_at_tip(svc, installation, repo, server)
        except (GitHubError, CheckoutError) as exc:
            report.failed.append(f"{repo}: {svc.mask(str(exc))}")
            continue
        for project in projects:
            where = f"{repo} {project.name}"
            try:
                count = _read_project(svc, store, sha, project, ttl)
            except NoReadableBackend as exc:
                log.debug("change records: %s: %s", where, exc)
                report.skipped.append(f"{where}: {exc}")
            except (TerraformError, CheckoutError, OSError) as exc:
                report.failed.append(f"{where}: {svc.mask(str(exc))[-1500:]}")
            else:
                report.read.append(f"{where} ({count} identifiers)")
    return report


def _projects_at_tip(svc: WorkerServices, installation: int, repo: str, server: RepoConfig) -> tuple[str, list[Project]]:
    """The default branch's tip, fetched into the mirror, and the projects it holds under its settings."""
    tip = fetch_tip(svc, repo, installation)
    return tip.sha, projects_at(svc, repo, server, tip.sha)


def _read_project(svc: WorkerServices, store: ChangeStore, sha: str, project: Project, ttl: int) -> int:
    """Index the identifiers `project`'s state holds; returns how many. Raises NoReadableBackend, TerraformError."""
    paths = [p for p in svc.checkouts.list_files(project.repo, sha, project.dir)
             if tf_dir_of(p) == project.dir and is_tf_file(p)]
    backend = backend_of(svc.checkouts.read_files(project.repo, sha, paths))
    scratch = svc.tmp_dir / "state-index" / project_slug(project)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        (scratch / "backend.tf.json").write_text(backend.tf_json())
        run = run_environment(svc, project.repo, 0, project, "plan", RUN_ID)
        if run.error:
            raise TerraformError(run.error)
        init = svc.terraform.init_backend(scratch, run)
        if not init.ok:
            raise TerraformError(f"terraform init of its {backend.type} backend failed: {init.output.strip()}", init)
        ids = state_ids(svc.terraform.state_pull(scratch, project.workspace, run))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    store.put_project_ids(project, ids, ttl)
    return len(ids)
