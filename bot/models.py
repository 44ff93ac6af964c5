"""Plain values shared across modules: what a project is, what a run produced, what a lock says."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True)
class Project:
    """One Terraform root module and workspace in one repository: the unit that is locked, planned and applied."""

    repo: str
    name: str
    dir: str
    workspace: str = "default"
    workflow: str = "default"
    autoplan: bool = True
    apply_requirements: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()  # names of projects whose apply must succeed before this one's
    execution_order_group: int = 0  # applies of lower groups come first
    terraform_version: str = ""  # a constraint the binary must meet (bot/projects/versions.py); "": the root's alone
    engine: str = "terraform"  # or "opentofu"

    @property
    def id(self) -> str:
        """The identity of the state this project touches; the lock key's tail."""
        return f"{self.repo}:{self.workspace}:{self.dir}"


class LockState(str, Enum):
    PLANNING = "planning"
    PLANNED = "planned"
    PLAN_FAILED = "plan failed"
    PLAN_STALE = "plan stale"
    APPLYING = "applying"
    APPLIED = "applied, awaiting merge"
    APPLY_FAILED = "apply failed"


@dataclass(frozen=True)
class LockInfo:
    """Who holds a workspace lock, since when, and why."""

    repo: str
    dir: str
    workspace: str
    project: str
    pull: int
    user: str
    locked_at: float
    token: int
    state: LockState = LockState.PLANNING
    pull_title: str = ""
    pull_url: str = ""
    summary: str = ""
    run_id: str = ""
    # The infrastructure and the default branch differ because of this PR: its apply ran (or started) and the
    # branch does not hold it yet, or it was merged and the branch's plan is not applied yet. Such a lock is
    # never released by a close or a writer's unlock; only by an apply that ends the difference, or by an
    # admin's unlock with a reason.
    diverged: bool = False
    # The command whose run set the current state (taking the lock, planning, applying), "" when tfbot set it
    # by itself (a hand-over). A report that a run died changes the lock only if that run set its state: any
    # other run of the same PR (one that never started, or gave up waiting) leaves it alone.
    command_id: str = ""
    # The extra arguments of the lock's current plan (`plan -- ...`), shell-quoted as bot.plan_args.shown writes
    # them; "" for a plain plan. Set with `summary`, so the page says what the plan it summarises was made with.
    extra_args: str = ""
    # Who `pull` is: "pull" (a PR) or "drift" (an `apply` commented on a drift issue, bot/drift/apply.py; GitHub
    # numbers issues and PRs in one sequence, so the number names it). A drift issue never waits in a line.
    kind: str = "pull"


@dataclass(frozen=True)
class ResourceChange:
    action: str  # create, update, replace, destroy (also: read, no-op are left out)
    address: str


@dataclass(frozen=True)
class Diagnostic:
    """One of Terraform's diagnostics (`terraform validate -json`), as Terraform printed it: PR code controls the
    text. `filename` is relative to the project's dir; lines count from 1; `line` 0 when it names no place."""

    severity: str  # error, warning
    summary: str
    detail: str = ""
    filename: str = ""
    line: int = 0
    end_line: int = 0


class Outcome(str, Enum):
    """How one project's run ended, as the PR comment reports it."""

    PLANNED = "planned"
    PLAN_FAILED = "plan failed"
    APPLIED = "applied"
    APPLY_FAILED = "apply failed"
    LOCKED = "locked"  # another PR holds the lock
    REFUSED = "refused"  # permission or apply requirement
    STALE = "stale"  # the stored plan no longer matches
    ERROR = "error"  # tfbot itself failed (checkout, GitHub, storage)
    SUPERSEDED = "superseded"  # a newer push queued its own plan; not reported
    NOTHING_TO_APPLY = "nothing to apply"  # merged, and the infrastructure already matches: lock released
    NOT_APPLIED = "not applied"  # a project it depends on did not apply (bot/lifecycle/ordering.py)


@dataclass
class ProjectResult:
    """The outcome of one project in one command, rendered into the PR comment."""

    project: Project
    outcome: Outcome
    summary: str = ""  # Terraform's own line, verbatim
    changes: list[ResourceChange] = field(default_factory=list)
    output: str = ""  # full Terraform output (plan or apply), or the error verbatim
    message: str = ""  # tfbot's explanation: who holds the lock, why refused, what to do next
    run_id: str = ""
    head_sha: str = ""
    has_changes: bool | None = None  # a plan that changes resources or outputs (None: not a plan)
    applicable: bool = True  # False for a plan of a PR into a branch tfbot does not apply: no `apply` offered
    binary: str = ""  # what ran it, as the PR reads it: `Terraform 1.0.3`, `OpenTofu 1.8.5`; "": not known
    extra_args: list[str] = field(default_factory=list)  # of the plan made or applied, from a `plan -- ...` comment
    diagnostics: list[Diagnostic] = field(default_factory=list)  # of a failed plan: the check run's annotations


# Terraform's own rule, narrowed: no path separators, and not `.` or `..` (a path under terraform.tfstate.d/).
# GitHub's repository roles, weakest first: a role grants everything the ones before it do.
REPO_ROLES = ("read", "triage", "write", "maintain", "admin")

_WORKSPACE_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,89}")


def validate_workspace(name: str) -> str:
    """Return `name` if it is a workspace name we pass to Terraform, else raise ValueError."""
    if not isinstance(name, str) or not _WORKSPACE_RE.fullmatch(name) or set(name) == {"."}:
        raise ValueError(
            f"invalid workspace name {name!r}: 1-90 letters, digits, '-', '_' or '.', "
            "not starting with '-' and not only dots"
        )
    return name
