"""The default branch's tip of a repository, fetched into this host's mirror, and the projects it holds: what
drift checks plan and what change records read the states of."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.config.repo_file import REPO_FILE, settings
from bot.lifecycle.module_graphs import module_graph
from bot.models import Project
from bot.projects.detection import all_projects

if TYPE_CHECKING:
    from bot.adapters.github import RepoAPI
    from bot.config.models import RepoConfig
    from bot.services import WorkerServices


@dataclass(frozen=True)
class Tip:
    """A repository's default branch as GitHub has it now, its tip in this host's mirror."""

    api: RepoAPI  # the repository as the App's installation on it sees it
    branch: str
    sha: str


def fetch_tip(svc: WorkerServices, repo: str, installation: int | None = None) -> Tip:
    """Ask GitHub for `repo`'s default branch and fetch its tip. Raises GitHubError (404: the App is not installed
    on `repo`), CheckoutError."""
    if installation is None:
        installation = svc.github.repo_installation(repo)
    api = svc.github.repo(installation, repo)
    branch, clone_url = api.default_branch()
    refspec = f"+refs/heads/{branch}:refs/tfbot/heads/{branch}"
    sha = svc.checkouts.fetch(repo, api.authenticated_clone_url(clone_url), [refspec])[refspec]
    return Tip(api=api, branch=branch, sha=sha)


def projects_at(svc: WorkerServices, repo: str, server: RepoConfig, sha: str) -> list[Project]:
    """The projects commit `sha` of `repo` holds under its settings: the server's entry, and the repository's
    `tfbot.yaml` at `sha` when it may be read (with problems, the server's entry: what a PR's plan would be refused
    with)."""
    config = server
    if server.read_repo_config:
        text = svc.checkouts.read_files(repo, sha, [REPO_FILE]).get(REPO_FILE)
        config = settings(server, text, workflows=frozenset(svc.workflows)).config
    return all_projects(repo, config, svc.checkouts.tf_dirs(repo, sha), module_graph(svc, repo, sha))
