"""The default branch's head of a repository and the projects it holds, as a PR's plan would find them: the
`repos[]` entry's declared projects, or its `tfbot.yaml`'s when the server lets it be read, or the roots found
by autodiscovery. Used by what works on the default branch rather than on a PR: the state index of change
records and the drift scheduler.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from bot.config.repo_file import REPO_FILE, settings
from bot.lifecycle.module_graphs import module_graph
from bot.models import Project
from bot.projects.detection import all_projects

if TYPE_CHECKING:
    from bot.config.models import RepoConfig
    from bot.services import WorkerServices


def default_branch_head(svc: WorkerServices, installation: int, repo: str) -> str:
    """Fetch the default branch's tip into the mirror; return its sha. One GitHub call (the repository) and one
    fetch. Raises GitHubError, CheckoutError."""
    api = svc.github.repo(installation, repo)
    branch, clone_url = api.default_branch()
    refspec = f"+refs/heads/{branch}:refs/tfbot/heads/{branch}"
    return svc.checkouts.fetch(repo, api.authenticated_clone_url(clone_url), [refspec])[refspec]


def projects_at(svc: WorkerServices, repo: str, sha: str, server: RepoConfig) -> list[Project]:
    """The projects commit `sha` (already in the mirror) holds under `server`, its `repos[]` entry. A `tfbot.yaml`
    with problems gives the server's entry alone: what a PR's plan would be refused with. Reads git only."""
    config = server
    if server.read_repo_config:
        text = svc.checkouts.read_files(repo, sha, [REPO_FILE]).get(REPO_FILE)
        config = settings(server, text, workflows=frozenset(svc.workflows)).config
    return all_projects(repo, config, svc.checkouts.tf_dirs(repo, sha), module_graph(svc, repo, sha))
