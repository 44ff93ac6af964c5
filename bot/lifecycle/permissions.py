"""Who may act: repository permission for apply/unlock, and per-project apply requirements."""
from __future__ import annotations

from bot.adapters.github import PullInfo, RepoAPI
from bot.models import Project

WRITE_PERMISSIONS = ("admin", "maintain", "write")


def may_write(gh: RepoAPI, login: str) -> bool:
    """Asked of GitHub on every call: a permission removed a minute ago is already gone."""
    return gh.permission(login) in WRITE_PERMISSIONS


def writer_approvals(gh: RepoAPI, pull: PullInfo) -> tuple[list[str], list[str]]:
    """(approvers with write access or more, approvers without) of the PR's head commit.

    An approval counts when it is its author's latest approving, change-requesting or dismissed review (a
    dismissed one counts as none) and it approves the head commit; each author's permission is asked of
    GitHub now, like the permission of a command's author.
    """
    approvers = gh.approved_on(pull.number, pull.head_sha)
    writers = [login for login in approvers if may_write(gh, login)]
    return writers, [login for login in approvers if login not in writers]


def apply_refusals(gh: RepoAPI, pull: PullInfo, projects: list[Project],
                   allow_draft: bool = False) -> dict[str, str]:
    """Project id -> why its apply requirements are not met; projects absent from the result may be applied.

    A draft PR is refused for every project unless the repository allows `apply` on drafts.
    """
    if pull.draft and not allow_draft:
        why = (f"#{pull.number} is a draft, and a draft is not ready to apply: mark it ready for review, then "
               "comment `apply` again (or an admin sets `allow_draft_apply: true` for this repository).")
        return {project.id: why for project in projects}
    refusals: dict[str, str] = {}
    approvals: tuple[list[str], list[str]] | None = None
    for project in projects:
        missing = []
        if "approved" in project.apply_requirements:
            if approvals is None:
                approvals = writer_approvals(gh, pull)
            writers, others = approvals
            if not writers:
                ignored = (" (approvals by " + ", ".join(f"`{login}`" for login in others)
                           + " do not count: they lack write access)") if others else ""
                missing.append(f"an approving review of the head commit {pull.head_sha[:8]} by someone with write "
                               f"access{ignored}")
        if "mergeable" in project.apply_requirements and pull.mergeable is not True:
            missing.append("the PR to be mergeable")
        if missing:
            refusals[project.id] = f"`{project.name}` requires " + " and ".join(missing) + " before `apply`."
    return refusals
