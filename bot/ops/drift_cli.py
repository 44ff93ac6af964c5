"""`tfbot drift`: check projects for drift now, in this process (not through the job queue), and print one line
per project. Exit status: 0 when every check is clean (or skipped: a PR holds the lock, or another run is under
way), 3 when one found drift, 1 when one failed (failures win: a drift hidden behind a failure is not "fine"), 2 for
a command or config tfbot cannot use (as argparse and every tfbot command use 2), so a script tells them apart.
"""
from __future__ import annotations

import fnmatch
import getpass
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from bot.ops.admin_cli import AdminError, connect_store

if TYPE_CHECKING:
    from bot.config import Config
    from bot.services import WorkerServices
    from bot.state.drift_checks import DriftCheck

EXIT_CLEAN, EXIT_FAILED, EXIT_DRIFTED = 0, 1, 3


@dataclass(frozen=True)
class Selection:
    """What `--repo` and `--project` ask for ("" : every one)."""

    repo: str = ""
    project: str = ""


def exit_status(checks: list[DriftCheck]) -> int:
    """1 when a check failed, else 3 when one drifted, else 0."""
    states = {c.state.value for c in checks}
    return EXIT_FAILED if "failed" in states else EXIT_DRIFTED if "drifted" in states else EXIT_CLEAN


def line(check: DriftCheck) -> str:
    """`acme/infra app (dir app, workspace default): drifted: Plan: 0 to add, 1 to change, 0 to destroy. <issue>`."""
    what = check.detail if check.state.value in ("failed", "skipped") else check.summary
    where = f" {check.issue_url}" if check.issue_url else ""
    text = f"{check.repo} {check.project} (dir {check.dir}, workspace {check.workspace}): {check.state.value}: {what}"
    return "".join(c if c.isprintable() else " " for c in text) + where


def run_checks(svc: WorkerServices, selection: Selection, out: TextIO, user: str = "tfbot") -> int:
    """Check every selected project, printing a line as each ends; returns the exit status. Without `--repo`, the
    repositories the App is installed on whose `drift.enabled` is on; a project is selected by `--project` (its
    name), else by the repository's `drift.projects` globs."""
    from requests import RequestException

    from bot.adapters.git import CheckoutError
    from bot.adapters.github import GitHubError
    from bot.drift.check import check_project
    from bot.lifecycle.default_branch import fetch_tip, projects_at

    repos = _repos(svc, selection)
    checks: list[DriftCheck] = []
    failed = False
    for repo in repos:
        server = svc.config.repo_config(repo)
        if server is None:
            raise AdminError(f"{repo} is not in the config's repos")
        try:
            tip = fetch_tip(svc, repo)
            projects = projects_at(svc, repo, server, tip.sha)
        except (GitHubError, CheckoutError, RequestException) as exc:
            out.write(f"{repo}: failed: {svc.mask(str(exc))}\n")
            failed = True
            continue
        chosen = [p for p in projects if (p.name == selection.project if selection.project
                                          else any(fnmatch.fnmatchcase(p.name, g) for g in server.drift.projects))]
        if selection.project and not chosen:
            raise AdminError(f"{repo} has no project named {selection.project!r} on its default branch "
                             f"(projects: {', '.join(p.name for p in projects) or 'none'})")
        for project in chosen:
            check = check_project(svc, project, reason="tfbot drift", tip=tip, user=user)
            checks.append(check)
            out.write(line(check) + "\n")
            out.flush()
    if not repos:
        out.write("No repository has drift checks on (repos[].drift.enabled); name one with --repo.\n")
    return EXIT_FAILED if failed else exit_status(checks)


def _repos(svc: WorkerServices, selection: Selection) -> list[str]:
    """`--repo`, else the installed repositories whose `drift.enabled` is on (GitHub is not asked when no `repos[]`
    entry has it on). Raises AdminError when GitHub cannot list them."""
    from requests import RequestException

    from bot.adapters.github import GitHubError

    if selection.repo:
        return [selection.repo]
    if not any(entry.drift.enabled for entry in svc.config.repos):
        return []
    try:
        installed = svc.github.installed_repos()
    except (GitHubError, RequestException) as exc:
        raise AdminError(f"cannot list the App's repositories at {svc.config.github.api_url}: "
                         f"{svc.mask(str(exc))[:300]}") from None
    found = []
    for _, repo in installed:
        server = svc.config.repo_config(repo)
        if server is not None and server.drift.enabled:
            found.append(repo)
    return sorted(found)


def run(config: Config, repo: str, project: str, out: TextIO) -> int:
    """Entry point from bot.cli."""
    from bot.compose import worker_services

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "tfbot"
    svc = worker_services(config, connect_store(config))
    return run_checks(svc, Selection(repo=repo, project=project), out, user=f"{user} (tfbot drift)")
