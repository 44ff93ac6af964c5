"""The records the fake GitHub keeps: plain data, guarded by the one lock FakeGitHub owns.

Nothing here does I/O or builds JSON; payload shapes live in fake_github_payloads.py.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

# Ids of different kinds start far apart, as GitHub's do, so a test fails when
# code passes a comment id where a status id (or an issue number) belongs.
_ID_BASES = {
    "user": 1_000,
    "repo": 100_000,
    "issue": 2_000_000,
    "pull": 3_000_000,
    "comment": 4_000_000,
    "reaction": 5_000_000,
    "review": 6_000_000,
    "status": 7_000_000,
    "check_run": 8_000_000,
    "check_suite": 9_000_000,
    "delivery": 10_000_000,
    "label": 11_000_000,
}


@dataclass
class User:
    login: str
    id: int
    type: str = "User"  # "User", "Organization" or "Bot"
    name: Optional[str] = None
    email: Optional[str] = None
    site_admin: bool = False


@dataclass
class Installation:
    id: int
    account_login: str
    permissions: dict[str, str]
    events: list[str]
    repository_selection: str = "all"
    created_at: float = field(default_factory=time.time)
    suspended: bool = False


@dataclass
class Token:
    token: str
    installation_id: int
    expires_at: float
    permissions: dict[str, str]
    repositories: Optional[set[str]] = None  # None: every repository of the installation
    revoked: bool = False


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    clone_url: str
    default_branch: str
    private: bool
    installation_id: Optional[int]
    fork: bool = False
    parent: Optional[str] = None
    created_at: float = field(default_factory=time.time)
    # GitHub shares one number sequence between issues and pull requests.
    last_number: int = 0
    collaborators: dict[str, str] = field(default_factory=dict)  # login -> role
    known_shas: set[str] = field(default_factory=set)
    branches: dict[str, str] = field(default_factory=dict)  # branch -> sha the fake was told about

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass(kw_only=True)
class Issue:
    repo: str
    number: int
    id: int
    title: str
    body: str
    user: str
    state: str = "open"
    locked: bool = False
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    closed_at: Optional[float] = None
    labels: list[str] = field(default_factory=list)  # names, in the order they were added
    state_reason: Optional[str] = None  # completed, not_planned or reopened, as the last close or reopen set it
    via_app: bool = False  # opened with an installation token: `performed_via_github_app` names the App


@dataclass
class Label:
    id: int
    repo: str
    name: str
    color: str = "ededed"  # what GitHub gives a label it creates for an issue
    description: Optional[str] = None


@dataclass(kw_only=True)
class Pull(Issue):
    pull_id: int
    head_ref: str
    head_sha: str
    head_repo: str
    base_ref: str
    base_sha: str
    draft: bool = False
    merged: bool = False
    merged_at: Optional[float] = None
    merged_by: Optional[str] = None
    merge_commit_sha: Optional[str] = None
    mergeable: Optional[bool] = True
    mergeable_state: str = "clean"
    maintainer_can_modify: bool = False
    files: Optional[list[dict[str, Any]]] = None  # None: derive from git when the repo is local


@dataclass
class Comment:
    id: int
    repo: str
    number: int
    user: str
    body: str
    created_at: float
    updated_at: float
    via_app: bool = False
    minimized: bool = False
    minimized_reason: Optional[str] = None


@dataclass
class Reaction:
    id: int
    subject: tuple  # ("comment", comment_id) or ("issue", repo, number)
    user: str
    content: str
    created_at: float


@dataclass
class Review:
    id: int
    repo: str
    number: int
    user: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING
    body: str
    commit_id: str
    submitted_at: Optional[float]


@dataclass
class Status:
    id: int
    repo: str
    sha: str
    state: str
    context: str
    description: Optional[str]
    target_url: Optional[str]
    creator: str
    created_at: float


@dataclass
class CheckRun:
    id: int
    repo: str
    name: str
    head_sha: str
    status: str
    conclusion: Optional[str]
    details_url: Optional[str]
    external_id: Optional[str]
    output: dict[str, Any]
    started_at: Optional[float]
    completed_at: Optional[float]
    suite_id: int
    actions: list[dict[str, Any]] = field(default_factory=list)  # the buttons, as last written
    annotations: list[dict[str, Any]] = field(default_factory=list)  # every write appends its own


@dataclass
class Delivery:
    id: int
    guid: str
    event: str
    action: Optional[str]
    status_code: int
    installation_id: Optional[int]
    repository_id: Optional[int]
    payload: dict[str, Any]
    request_headers: dict[str, str]
    delivered_at: float
    redelivery: bool = False
    duration: float = 0.05


@dataclass
class Fault:
    remaining: int
    status: int
    path_contains: Optional[str]
    method: Optional[str]
    headers: dict[str, str]
    body: Any


@dataclass
class MutationFault:
    """The next `remaining` GraphQL mutations named `mutation` fail with GitHub's error `kind` (NOT_FOUND,
    FORBIDDEN, UNPROCESSABLE, ...) and `message`, while the rest of their document runs."""
    remaining: int
    mutation: str
    kind: str
    message: str


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake answered: what a test asserts on."""

    method: str
    # The resource as /repos/{owner}/{name}/... even when reached through
    # /repositories/{id}/... (GitHub's paging links); no API prefix, no query.
    path: str
    query: dict[str, str]
    status: int
    installation_id: Optional[int]  # the installation whose token made the call, if any
    auth: Optional[str]  # "jwt", "installation", "user" (a user access token) or None
    body: Any  # the parsed JSON request body, or None
    raw_path: str = ""  # the path exactly as requested (without the API prefix)


@dataclass
class OAuthCode:
    """A code GitHub's authorize page handed back: single use, for `login`, bound to the redirect_uri it went to."""

    login: str
    redirect_uri: str
    expires_at: float
    used: bool = False


@dataclass
class State:
    """Everything the fake knows; every access holds `lock`."""

    app_id: int
    app_slug: str
    app_owner: str
    client_id: str
    public_key_pem: bytes
    token_lifetime: float
    client_secret: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)
    users: dict[str, User] = field(default_factory=dict)
    installations: dict[int, Installation] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    repos: dict[str, Repo] = field(default_factory=dict)  # keyed by lower-cased full name
    issues: dict[tuple[str, int], Issue] = field(default_factory=dict)
    labels: dict[tuple[str, str], Label] = field(default_factory=dict)  # (repo, lower-cased name)
    comments: dict[int, Comment] = field(default_factory=dict)
    reactions: dict[int, Reaction] = field(default_factory=dict)
    reviews: dict[int, Review] = field(default_factory=dict)
    statuses: dict[int, Status] = field(default_factory=dict)
    check_runs: dict[int, CheckRun] = field(default_factory=dict)
    check_suites: dict[tuple[str, str], int] = field(default_factory=dict)  # (repo, head sha) -> suite id
    deliveries: dict[int, Delivery] = field(default_factory=dict)
    redelivery_attempts: list[int] = field(default_factory=list)  # delivery ids, in order
    faults: list[Fault] = field(default_factory=list)
    mutation_faults: list[MutationFault] = field(default_factory=list)
    log: list[RecordedRequest] = field(default_factory=list)
    on_redeliver: Optional[Callable[[dict[str, Any]], Optional[int]]] = None
    # The OAuth web flow: who is signed in to GitHub in the browser and approves (None: they cancel), the App's
    # registered callback URL, codes handed out, user access tokens issued (token -> login).
    oauth_user: Optional[str] = None
    oauth_callback_url: str = ""
    oauth_codes: dict[str, OAuthCode] = field(default_factory=dict)
    user_tokens: dict[str, str] = field(default_factory=dict)
    _counters: dict[str, Iterator[int]] = field(default_factory=dict)

    def next_id(self, kind: str) -> int:
        """A fresh id for a record of `kind`, unique within the fake."""
        if kind not in self._counters:
            self._counters[kind] = itertools.count(_ID_BASES[kind] + 1)
        return next(self._counters[kind])

    @property
    def bot_login(self) -> str:
        return f"{self.app_slug}[bot]"

    def repo(self, full_name: str) -> Optional[Repo]:
        """The repository named `owner/name` (GitHub matches names case-insensitively)."""
        return self.repos.get(full_name.lower())

    def repo_by_id(self, repo_id: int) -> Optional[Repo]:
        """The repository with numeric id `repo_id`."""
        return next((r for r in self.repos.values() if r.id == repo_id), None)

    def ensure_user(self, login: str, type: str = "User") -> User:
        """The user `login`, created on first mention so tests need not declare every actor."""
        user = self.users.get(login.lower())
        if user is None:
            user = User(login=login, id=self.next_id("user"), type=type)
            self.users[login.lower()] = user
        return user
