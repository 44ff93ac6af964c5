"""Which commit a plan is made on, and whether two commits hold the same project.

A PR is planned as GitHub will merge it: its head merged into the current tip of its base branch. The
plan then shows only what the PR changes, even when main moved on since the branch point (another PR
was merged and applied), instead of proposing to undo what main already holds. A PR that conflicts
with its base is planned on its head alone, and the comment says so.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.lifecycle.module_graphs import module_graph
from bot.models import Project

if TYPE_CHECKING:
    from bot.services import WorkerServices
    from bot.state.records import Command

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    sha: str  # the commit checked out and planned
    head_sha: str  # the PR's head
    base_sha: str  # the base branch's tip it was merged into ("" when planned on the head alone)

    @property
    def merged(self) -> bool:
        return bool(self.base_sha) and self.sha != self.head_sha

    def describe(self, base_ref: str) -> str:
        if self.merged:
            return f"Planned as merged into `{base_ref}` at {self.base_sha[:8]}."
        return (f"This PR conflicts with `{base_ref}`: planned on its head alone. Resolve the conflict to see the "
                "plan of what the merge would apply.")


def _clone_url(svc: WorkerServices, cmd: Command) -> str:
    return str(svc.github.repo(cmd.installation, cmd.repo).authenticated_clone_url(cmd.info["clone_url"]))


def merged_target(svc: WorkerServices, cmd: Command, head_sha: str) -> Target:
    """Fetch the PR's head and base branch, and merge them the way the merge button will."""
    base_ref = cmd.info.get("base_ref") or "main"
    base_dest = f"refs/tfbot/heads/{base_ref}"
    fetched = svc.checkouts.fetch(cmd.repo, _clone_url(svc, cmd), [
        f"+refs/pull/{cmd.pull}/head:refs/tfbot/pull/{cmd.pull}/head", f"+refs/heads/{base_ref}:{base_dest}"])
    base_tip = fetched[f"+refs/heads/{base_ref}:{base_dest}"]
    svc.checkouts.ensure_commit(cmd.repo, _clone_url(svc, cmd), head_sha, cmd.pull)
    merge = svc.checkouts.merge_commit(cmd.repo, base_tip, head_sha, cmd.pull)
    return Target(sha=merge or head_sha, head_sha=head_sha, base_sha=base_tip if merge else "")


def ensure_commit(svc: WorkerServices, cmd: Command, sha: str, head_sha: str = "", base_sha: str = "") -> None:
    """Make `sha` present in this host's mirror: fetched, or re-made when it is tfbot's own merge commit."""
    if svc.checkouts.has_commit(cmd.repo, sha):
        return
    if head_sha and base_sha and sha != head_sha:
        for needed in (base_sha, head_sha):
            svc.checkouts.ensure_commit(cmd.repo, _clone_url(svc, cmd), needed, cmd.pull)
        if svc.checkouts.merge_commit(cmd.repo, base_sha, head_sha, cmd.pull) == sha:
            return
    svc.checkouts.ensure_commit(cmd.repo, _clone_url(svc, cmd), sha, cmd.pull)


def same_content(svc: WorkerServices, repo: str, project: Project, a: str, b: str) -> bool:
    """True when commits `a` and `b` hold the same project dir and the same paths it reads: the local modules it
    calls, transitively, and the targets of its symlinks and theirs, as either commit's module graph has them."""
    from bot.adapters.git import CheckoutError

    for sha in (a, b):
        if not svc.checkouts.has_commit(repo, sha):  # a missing commit must not read as "changed"
            raise CheckoutError(f"commit {sha} is not in this host's mirror of {repo}")
    dirs = {project.dir} | module_graph(svc, repo, a).reads(project.dir) | module_graph(svc, repo, b).reads(project.dir)
    return all(svc.checkouts.tree_hash(repo, a, d) == svc.checkouts.tree_hash(repo, b, d) for d in sorted(dirs))


def applied_holds_target(svc: WorkerServices, cmd: Command, project: Project, applied_run: dict[str, Any],
                         target: str) -> bool:
    """True when `applied_run` (a run record's meta, bot/state/records.py) is a successful apply of `project` from a
    whole plan (no extra arguments) of a commit whose whole tree is commit `target`'s: the infrastructure then
    already holds what `target` would make of it. The whole tree, not the project's dir and modules: a root may
    read any file of the repository (`file("../shared/x")`, a `-var-file` of its workflow, `tfbot.yaml`), and
    nothing short of every file proves it reads the same. False whenever that cannot be shown (another kind of
    run, a commit no longer fetchable): the caller plans the target instead."""
    from bot.adapters.git import CheckoutError

    applied = str(applied_run.get("planned_sha") or "")
    if (applied_run.get("kind") != "apply" or applied_run.get("ok") is not True or applied_run.get("extra_args")
            or applied_run.get("project") != project.name or applied_run.get("dir") != project.dir
            or applied_run.get("workspace") != project.workspace or not applied or not target):
        return False
    try:
        ensure_commit(svc, cmd, applied, str(applied_run.get("sha") or ""), str(applied_run.get("base_sha") or ""))
        return same_tree(svc, cmd.repo, target, applied)
    except CheckoutError as exc:
        log.info("%s#%d %s: the applied commit %s cannot be compared with %s (%s): planning instead", cmd.repo,
                 cmd.pull, project.name, applied[:8], target[:8], exc)
        return False


def same_tree(svc: WorkerServices, repo: str, a: str, b: str) -> bool:
    """True when commits `a` and `b` (both in this host's mirror) hold exactly the same files. What a merge needs
    before it takes a plan of one for the other: a root may read any file of the repository (`file("../x")`, a
    workflow's `-var-file`, `tfbot.yaml`), so its dir and modules alone do not prove the infrastructure matches."""
    tree = svc.checkouts.tree_hash(repo, a, ".")
    return tree is not None and tree == svc.checkouts.tree_hash(repo, b, ".")
