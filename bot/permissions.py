"""Who may act: repository permission for apply/unlock, and per-project apply requirements."""
from __future__ import annotations

from bot.github_api import PullInfo, RepoAPI
from bot.models import Project

WRITE_PERMISSIONS = ("admin", "maintain", "write")


def may_write(gh: RepoAPI, login: str) -> bool:
    """Asked of GitHub on every call: a permission removed a minute ago is already gone."""
    return gh.permission(login) in WRITE_PERMISSIONS


def apply_refusals(gh: RepoAPI, pull: PullInfo, projects: list[Project]) -> dict[str, str]:
    """Project id -> why its apply requirements are not met; projects absent from the result may be applied."""
    refusals: dict[str, str] = {}
    approvers: list[str] | None = None
    for project in projects:
        missing = []
        if "approved" in project.apply_requirements:
            if approvers is None:
                approvers = gh.approved_on(pull.number, pull.head_sha)
            if not approvers:
                missing.append(f"an approving review of the head commit {pull.head_sha[:8]}")
        if "mergeable" in project.apply_requirements and pull.mergeable is not True:
            missing.append("the PR to be mergeable")
        if missing:
            refusals[project.id] = f"`{project.name}` requires " + " and ".join(missing) + " before `apply`."
    return refusals
