"""The settings a PR is planned and applied with: the server's `repos[]` entry, overridden by the repository's
`tfbot.yaml` as the PR merged into its base holds it (bot/config/repo_file.py decides; this module reads it).

"As merged": the PR's version of the file when the PR changes it, else its base branch's; for a merged PR, the
merge commit's when tfbot's mirror has it.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from bot.config import RepoConfig
from bot.config.repo_file import REPO_FILE, RepoSettings, settings
from bot.models import Project
from bot.projects.detection import project_at
from bot.render.comments import code_span

if TYPE_CHECKING:
    from bot.adapters.github import PullInfo
    from bot.services import WorkerServices

log = logging.getLogger(__name__)


def pull_settings(svc: WorkerServices, repo: str, server: RepoConfig, pull: PullInfo,
                  changed_files: Iterable[str], *, trust_head: bool = True) -> RepoSettings:
    """The PR's settings; its head and base must be in tfbot's mirror (`Checkouts.fetch`). Without `trust_head`
    (a fork's push nobody approved) the base branch's file is read, whatever the PR changed."""
    if not server.read_repo_config:
        return RepoSettings(server)
    changed = trust_head and REPO_FILE in set(changed_files)
    sha = pull.head_sha if changed else pull.base_sha
    if pull.merged and pull.merge_commit_sha and svc.checkouts.has_commit(repo, pull.merge_commit_sha):
        sha = pull.merge_commit_sha
    text = svc.checkouts.read_files(repo, sha, [REPO_FILE]).get(REPO_FILE)
    found = settings(server, text, changed=changed, workflows=frozenset(svc.workflows))
    if found.problems:
        log.info("%s#%d: %s at %s has %d problem(s)", repo, pull.number, REPO_FILE, sha[:8], len(found.problems))
    return found


def resolved(projects: Iterable[Project], config: RepoConfig) -> list[Project]:
    """`projects` (rebuilt from a lock or a job) as `config` makes them: its workflow and apply requirements."""
    return [project_at(p.repo, config, p.dir, p.workspace, p.name) for p in projects]


PLAN_ADVICE = "Nothing was planned or locked. Fix the file and push (or comment `plan` once it is fixed)."


def problems_text(found: RepoSettings, advice: str = PLAN_ADVICE) -> str:
    """Markdown for the PR: every problem of its `tfbot.yaml`, one line each, then `advice` (what was not done)."""
    lines = "\n".join(f"- {code_span(p.text())}" for p in found.problems)
    where = "This PR's version of" if found.changed else "The base branch's"
    return f"{where} `{REPO_FILE}` has {len(found.problems)} problem(s). {advice}\n\n{lines}"


def changed_note(found: RepoSettings) -> str:
    """A line for the plan comment when the PR changes `tfbot.yaml` ("" when it does not)."""
    if not found.changed:
        return ""
    return (f"This PR changes `{REPO_FILE}`: it was planned with the PR's version of the file, which takes effect "
            "for everyone once merged.")
