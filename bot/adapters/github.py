"""The narrow GitHub adapter: everything tfbot asks of GitHub goes through here, over PyGithub.

Nothing else imports PyGithub, so the client can be replaced. PyGithub 2.x defaults that matter and are
overridden here: it sleeps 0.25 s before every request and 1 s before every write, and retries a 5xx ten
times; tfbot takes both from `github.*` settings instead.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import redis
from cryptography.fernet import Fernet, InvalidToken
from github import Auth, Github, GithubException, GithubIntegration, GithubRetry

from bot.adapters.app_jwt import rs256_signer
from bot.adapters.logs import masker

if TYPE_CHECKING:
    from bot.config import GitHubConfig
    from github.Issue import Issue
    from github.IssueComment import IssueComment
    from github.PullRequestReview import PullRequestReview
    from github.Repository import Repository

log = logging.getLogger(__name__)

T = TypeVar("T")
# Refresh an installation token this long before GitHub's expiry, so a long run never holds a dead one.
TOKEN_MARGIN_SECONDS = 300


class GitHubError(Exception):
    """A GitHub call failed after retries; the message names the call and GitHub's status and message."""


@dataclass(frozen=True)
class PullInfo:
    """What tfbot needs to know about a pull request."""

    number: int
    title: str
    author: str
    state: str
    draft: bool
    merged: bool
    head_sha: str
    head_ref: str
    base_sha: str
    base_ref: str
    merge_commit_sha: str | None
    is_fork: bool
    mergeable: bool | None
    html_url: str
    clone_url: str
    merged_by: str = ""
    default_branch: str = ""  # the repository's default branch ("" when GitHub did not say)
    node_id: str = ""  # the PR's GraphQL node id ("" when GitHub did not say)
    repo_node_id: str = ""  # the base repository's GraphQL node id ("" when GitHub did not say)

    @classmethod
    def from_payload(cls, pr: dict[str, Any], full_name: str) -> "PullInfo | None":
        """The PR as a webhook's `pull_request` object describes it (GitHub sends the same object `GET /pulls/{n}`
        answers, as of the event), or None when the object lacks a field tfbot needs (a payload tfbot built itself,
        such as reconciliation's missed `closed` event): then ask GitHub. Saves a request per event."""
        try:
            head, base = pr["head"], pr["base"]
            base_repo = base["repo"]
            head_repo = head.get("repo")
            merged_by = pr.get("merged_by") or {}
            return cls(
                number=int(pr["number"]), title=str(pr.get("title") or ""),
                author=str((pr.get("user") or {}).get("login") or ""), state=str(pr["state"]),
                draft=bool(pr.get("draft")), merged=bool(pr.get("merged")),
                head_sha=str(head["sha"]), head_ref=str(head["ref"]),
                base_sha=str(base["sha"]), base_ref=str(base["ref"]),
                merge_commit_sha=pr.get("merge_commit_sha"),
                is_fork=bool(head_repo is None or head_repo.get("full_name") != full_name),
                mergeable=pr.get("mergeable"), html_url=str(pr["html_url"]), clone_url=str(base_repo["clone_url"]),
                merged_by=str(merged_by.get("login") or "") if pr.get("merged") else "",
                default_branch=str(base_repo.get("default_branch") or ""),
                node_id=str(pr.get("node_id") or ""), repo_node_id=str(base_repo.get("node_id") or ""),
            )
        except (KeyError, TypeError, AttributeError, ValueError):
            return None


@dataclass(frozen=True)
class IssueInfo:
    """A plain issue (never a pull request) as tfbot reads it; `body` is "" when it has none."""

    number: int
    state: str  # open or closed
    title: str
    body: str
    html_url: str
    labels: tuple[str, ...] = ()
    user: str = ""  # the login of who opened it
    app_id: int = 0  # the GitHub App it was opened through (`performed_via_github_app`), 0 when none
    user_type: str = ""  # GitHub's type of the author: "Bot" for an App's installation, "User" for a person

    def by_app(self, app_id: int | None, bot_login: str) -> bool:
        """Whether the App opened it as itself: the author is a bot account (no person is one, even acting through
        the App with a user token) that is the App's (`performed_via_github_app`) or has its login."""
        return self.user_type == "Bot" and ((bool(app_id) and self.app_id == app_id)
                                            or self.user.lower() == bot_login.lower())


@dataclass(frozen=True)
class HookDelivery:
    """One attempt to deliver a webhook, as GitHub lists the App's deliveries (`GET /app/hook/deliveries`).

    `guid` is the `X-GitHub-Delivery` header the attempt carried: a redelivery keeps the guid and gets a new id.
    `status_code` is what tfbot (or whatever stood at the webhook URL) answered; 0 when nothing answered.
    """

    id: int
    guid: str
    delivered_at: float
    redelivery: bool
    status_code: int
    event: str
    action: str
    installation_id: int | None
    repository_id: int | None


class GitHubApp:
    """Authenticates as the App and hands out per-installation clients with cached tokens."""

    def __init__(self, config: GitHubConfig, store: redis.Redis | None = None,
                 token_key: Callable[[int], str] | None = None):
        """`store` shares installation tokens (sealed) between processes under `token_key(installation)`."""
        if store is not None and token_key is None:
            raise ValueError("a token store needs its key names (bot.state.keys.installation_token)")
        self.config = config
        self.store = store
        self._token_key = token_key or (lambda installation: "")
        self._tokens: dict[int, tuple[str, float]] = {}
        self._app_client: GithubIntegration | None = None  # authenticated as the App (JWT), built on first use

    def _retry(self) -> GithubRetry | None:
        if self.config.retries == 0:
            return None
        # 5xx and secondary rate limits (403/429 with Retry-After or x-ratelimit-reset) are retried with
        # exponential backoff and jitter, `retries` times; Retry-After is honoured up to 30 s, never minutes.
        return GithubRetry(
            total=self.config.retries,
            backoff_factor=0.5,
            backoff_jitter=0.5,
            secondary_rate_wait=30,
            status_forcelist=[*range(500, 600), 429],
            allowed_methods={"GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"},
        )

    def installation_token(self, installation_id: int) -> str:
        """A token for the installation, minted with the App's JWT and reused until shortly before it expires."""
        cached = self._tokens.get(installation_id)
        if cached is None and self.store is not None:
            raw = self.store.get(self._token_key(installation_id))
            if raw:
                try:
                    token, expires = json.loads(self._cipher().decrypt(raw))
                    cached = (token, float(expires))
                except (InvalidToken, ValueError):
                    cached = None  # written under another App key: mint a new one
        if cached and cached[1] - time.time() > TOKEN_MARGIN_SECONDS:
            masker().add(cached[0])  # minted by another process: this one must mask it too
            return cached[0]
        try:
            auth = self._integration().get_access_token(installation_id)
        except GithubException as exc:
            raise GitHubError(f"minting a token for installation {installation_id}: {_describe(exc)}") from None
        expires = auth.expires_at.timestamp() if auth.expires_at else time.time() + 3600
        masker().add(auth.token)
        self._tokens[installation_id] = (auth.token, expires)
        if self.store is not None:
            # Work horses are forked per job; Redis lets them share a token instead of minting one per job.
            ttl = max(1, int(expires - time.time() - TOKEN_MARGIN_SECONDS))
            sealed = self._cipher().encrypt(json.dumps([auth.token, expires]).encode())
            self.store.set(self._token_key(installation_id), sealed, ex=ttl)
        return auth.token

    def _cipher(self) -> Fernet:
        """Tokens cached in Redis are sealed with a key derived from the App's private key: Redis alone gives none."""
        digest = hashlib.sha256(b"tfbot installation token cache\0" + self.config.private_key.encode()).digest()
        return Fernet(base64.urlsafe_b64encode(digest))

    def repo(self, installation_id: int, full_name: str) -> "RepoAPI":
        token = self.installation_token(installation_id)
        client = Github(
            auth=Auth.Token(token),
            base_url=self.config.api_url,
            timeout=int(self.config.timeout),
            retry=self._retry(),
            seconds_between_requests=None,
            seconds_between_writes=self.config.write_interval or None,
            # Objects are fetched when first read, so commenting on an issue costs one request, not three.
            lazy=True,
        )
        return RepoAPI(client, full_name, token)

    # --- the App's own endpoints, called with its JWT (PyGithub has no methods for the App's hook deliveries) ---

    def _integration(self) -> GithubIntegration:
        if self._app_client is None:
            # Both are checked when the config is loaded for a command that talks to GitHub as the App.
            if self.config.app_id is None:
                raise GitHubError("github.app_id is not set: the App's own endpoints need it")
            try:
                sign = rs256_signer(self.config.private_key)
            except ValueError as exc:
                raise GitHubError(str(exc)) from None
            self._app_client = GithubIntegration(
                auth=Auth.AppAuth(self.config.app_id, sign_func=sign),
                base_url=self.config.api_url,
                timeout=int(self.config.timeout),
                retry=self._retry(),
                seconds_between_requests=None,
                seconds_between_writes=None,
            )
        return self._app_client

    def hook_deliveries(self, since: float) -> list[HookDelivery]:
        """The App's webhook delivery attempts made at or after `since` (unix time), newest first."""
        from github.HookDelivery import HookDeliverySummary
        from github.PaginatedList import PaginatedList

        found: list[HookDelivery] = []
        pages = PaginatedList(HookDeliverySummary, self._integration().requester, "/app/hook/deliveries",
                              {"per_page": 100})
        try:
            # GitHub lists newest first and pages with an opaque cursor: stop at the first one older than `since`.
            for d in pages:
                at = d.delivered_at.timestamp() if d.delivered_at else 0.0
                if at < since:
                    break
                found.append(HookDelivery(
                    id=int(d.id or 0), guid=d.guid or "", delivered_at=at, redelivery=bool(d.redelivery),
                    status_code=int(d.status_code or 0), event=d.event or "", action=d.action or "",
                    installation_id=d.installation_id, repository_id=d.repository_id,
                ))
        except GithubException as exc:
            raise GitHubError(f"listing the App's webhook deliveries: {_describe(exc)}") from None
        return found

    def redeliver(self, delivery_id: int) -> None:
        """Ask GitHub to send delivery `delivery_id` again (`POST /app/hook/deliveries/{id}/attempts`)."""
        try:
            url = f"/app/hook/deliveries/{int(delivery_id)}/attempts"
            self._integration().requester.requestJsonAndCheck("POST", url)
        except GithubException as exc:
            raise GitHubError(f"redelivering webhook delivery {delivery_id}: {_describe(exc)}") from None

    def installed_repos(self) -> list[tuple[int, str]]:
        """(installation id, OWNER/NAME) of every repository the App is installed on, by installation."""
        from github.PaginatedList import PaginatedList
        from github.Repository import Repository

        try:
            installations = sorted(int(i.id) for i in self._integration().get_installations())
        except GithubException as exc:
            raise GitHubError(f"listing the App's installations: {_describe(exc)}") from None
        found: list[tuple[int, str]] = []
        for installation in installations:
            client = Github(auth=Auth.Token(self.installation_token(installation)), base_url=self.config.api_url,
                            timeout=int(self.config.timeout), retry=self._retry(), seconds_between_requests=None)
            pages = PaginatedList(Repository, client.requester, "/installation/repositories", {"per_page": 100},
                                  list_item="repositories")
            try:
                found += [(installation, str(r.full_name)) for r in pages]
            except GithubException as exc:
                raise GitHubError(f"listing the repositories of installation {installation}: {_describe(exc)}") \
                    from None
        return found

    def repo_installation(self, full_name: str) -> int:
        """The id of the App's installation on repository `full_name`."""
        owner, _, name = full_name.partition("/")
        try:
            return int(self._integration().get_repo_installation(owner, name).id)
        except GithubException as exc:
            raise GitHubError(f"finding the installation of {full_name}: {_describe(exc)}") from None


class RepoAPI:
    """One repository as one installation sees it."""

    def __init__(self, client: Github, full_name: str, token: str):
        self._gh = client
        self.full_name = full_name
        self._token = token
        self._repo: Repository | None = None

    def _r(self) -> Repository:
        if self._repo is None:
            self._repo = self._call("get repository", lambda: self._gh.get_repo(self.full_name))
        return self._repo

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except GithubException as exc:
            raise GitHubError(f"{what} on {self.full_name}: {_describe(exc)}") from None

    def authenticated_clone_url(self, clone_url: str) -> str:
        """The clone URL with the installation token for https remotes; other schemes unchanged."""
        parts = urlsplit(clone_url)
        if parts.scheme != "https":
            return clone_url
        netloc = f"x-access-token:{quote(self._token, safe='')}@{parts.hostname}" + (
            f":{parts.port}" if parts.port else ""
        )
        return urlunsplit(parts._replace(netloc=netloc))

    def pull(self, number: int) -> PullInfo:
        p = self._call(f"get pull #{number}", lambda: self._r().get_pull(number))
        head_repo = p.head.repo
        return PullInfo(
            number=p.number,
            title=p.title or "",
            author=p.user.login if p.user else "",
            state=p.state,
            draft=bool(p.draft),
            merged=bool(p.merged),
            head_sha=p.head.sha,
            head_ref=p.head.ref,
            base_sha=p.base.sha,
            base_ref=p.base.ref,
            merge_commit_sha=p.merge_commit_sha,
            is_fork=bool(head_repo is None or head_repo.full_name != self.full_name),
            mergeable=p.mergeable,
            html_url=p.html_url,
            clone_url=p.base.repo.clone_url,
            merged_by=p.merged_by.login if p.merged and p.merged_by else "",
            default_branch=p.base.repo.default_branch or "",
            node_id=p.node_id or "",
            repo_node_id=p.base.repo.node_id or "",
        )

    def create_comment(self, number: int, body: str) -> int:
        c = self._call(f"comment on #{number}", lambda: self._r().get_issue(number).create_comment(body))
        return int(c.id)

    def post_comment(self, number: int, body: str) -> tuple[int, str]:
        """Comment on #`number`; returns the comment's (REST id, GraphQL node id)."""
        c = self._call(f"comment on #{number}", lambda: self._r().get_issue(number).create_comment(body))
        return int(c.id), str(c.node_id)

    def minimize_comment(self, node_id: str, classifier: str = "OUTDATED") -> None:
        """Hide a comment as GitHub's "Hide" menu does (GraphQL `minimizeComment`; `classifier` one of GitHub's
        ReportedContentClassifiers, such as OUTDATED). Raises GitHubError if GitHub refuses."""
        def minimize() -> None:
            _, data = self._gh.requester.graphql_named_mutation(
                mutation_name="minimizeComment", mutation_input={"subjectId": node_id, "classifier": classifier},
                output_schema="minimizedComment { isMinimized }")
            if not (data.get("minimizedComment") or {}).get("isMinimized"):
                raise GithubException(422, {"message": f"comment {node_id} was not minimized"}, None)

        self._call(f"minimize comment {node_id}", minimize)

    def graphql(self, what: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Send one GraphQL document; return GitHub's JSON answer, `{"data": ..., "errors": [...]}` as it came.

        GraphQL errors do not raise here: the mutations of a document succeed or fail each by itself, and the caller
        reads which (bot/render/report_graphql.py). An HTTP failure (after PyGithub's retries) raises GitHubError
        naming `what`. PyGithub's `graphql_query` would raise on the first error and keep no partial data apart, so
        the request is sent with its requester directly, to the same URL.
        """
        def send() -> dict[str, Any]:
            requester = self._gh.requester
            _, data = requester.requestJsonAndCheck("POST", requester.graphql_url,
                                                    input={"query": query, "variables": variables})
            return data if isinstance(data, dict) else {}

        return self._call(what, send)

    def _comment(self, number: int, comment_id: int) -> IssueComment:
        # PyGithub reaches an issue comment through its issue; the extra GET is lazy-free but cheap.
        return self._r().get_issue(number).get_comment(comment_id)

    def edit_comment(self, number: int, comment_id: int, body: str) -> None:
        self._call(f"edit comment {comment_id}", lambda: self._comment(number, comment_id).edit(body))

    def comment_body(self, number: int, comment_id: int) -> str:
        return str(self._call(f"get comment {comment_id}", lambda: self._comment(number, comment_id).body) or "")

    def comment_bodies(self, number: int) -> list[tuple[int, str, str]]:
        """(id, author login, body) of every comment on the PR, oldest first."""
        comments = self._call(f"list comments of #{number}", lambda: list(self._r().get_issue(number).get_comments()))
        return [(int(c.id), c.user.login if c.user else "", c.body or "") for c in comments]

    def create_issue(self, title: str, body: str, labels: list[str]) -> tuple[int, str]:
        """Open an issue; returns its number and html_url. GitHub creates a label the repository lacks."""
        issue = self._call("create an issue", lambda: self._r().create_issue(title=title, body=body, labels=labels))
        return int(issue.number), str(issue.html_url)

    def edit_issue(self, number: int, title: str, body: str) -> None:
        """Replace an issue's title and body (its state, labels and comments are left as they are)."""
        self._call(f"edit issue #{number}", lambda: self._r().get_issue(number).edit(title=title, body=body))

    def issue(self, number: int) -> IssueInfo | None:
        """Issue #`number`; None when there is none, or it is a pull request."""
        try:
            issue = self._r().get_issue(number)
            if issue.pull_request is not None:
                return None
            return _issue_info(issue)
        except GithubException as exc:
            if exc.status in (404, 410):  # never was, or deleted
                return None
            raise GitHubError(f"get issue #{number} on {self.full_name}: {_describe(exc)}") from None

    def issues_labelled(self, label: str, state: str = "open") -> list[IssueInfo]:
        """The plain issues carrying `label` in `state` (open, closed or all), oldest first (every page)."""
        def listed() -> list[IssueInfo]:
            pages = self._r().get_issues(state=state, labels=[label], sort="created", direction="asc")
            return [_issue_info(i) for i in pages if i.pull_request is None]

        return list(self._call(f"list issues labelled {label!r}", listed))

    def ensure_label(self, name: str, color: str, description: str) -> None:
        """Create label `name` unless the repository has it (an existing one keeps its colour and description)."""
        try:
            _ = self._r().get_label(name).color  # read a field: a lazy client asks GitHub only then
            return
        except GithubException as exc:
            if exc.status != 404:
                raise GitHubError(f"get label {name!r} on {self.full_name}: {_describe(exc)}") from None
        try:
            self._r().create_label(name, color, description)
        except GithubException as exc:
            if exc.status == 422 and "already_exists" in json.dumps(exc.data):  # made meanwhile: fine
                return
            raise GitHubError(f"create label {name!r} on {self.full_name}: {_describe(exc)}") from None

    def close_issue(self, number: int, state_reason: str = "completed") -> None:
        """Close issue #`number` with `state_reason` (completed or not_planned)."""
        self._call(f"close issue #{number}",
                   lambda: self._r().get_issue(number).edit(state="closed", state_reason=state_reason))

    def default_branch(self) -> tuple[str, str]:
        """The repository's default branch and its clone URL."""
        repo = self._r()
        return self._call("read the repository", lambda: (str(repo.default_branch), str(repo.clone_url)))

    def react(self, number: int, comment_id: int, content: str) -> None:
        self._call(
            f"react to comment {comment_id}", lambda: self._comment(number, comment_id).create_reaction(content)
        )

    def set_status(self, sha: str, context: str, state: str, description: str, target_url: str = "") -> None:
        # GitHub rejects descriptions over 140 characters.
        description = description if len(description) <= 140 else description[:139] + "…"
        kwargs = {"state": state, "description": description, "context": context}
        if target_url:
            kwargs["target_url"] = target_url
        self._call(f"set status {context} on {sha[:8]}", lambda: self._r().get_commit(sha).create_status(**kwargs))

    def create_check_run(self, sha: str, name: str, fields: dict[str, Any]) -> tuple[int, str]:
        """Create check run `name` on commit `sha`; return GitHub's (REST id, GraphQL node id).

        `fields` are the request's other keys as GitHub names them (status, conclusion, external_id, details_url,
        output, actions): bot.render.checks keeps them within GitHub's limits.
        """
        run = self._call(f"create check run {name!r} on {sha[:8]}",
                         lambda: self._r().create_check_run(name, sha, **fields))
        return int(run.id), str(run.node_id or "")

    def update_check_run(self, check_run_id: int, fields: dict[str, Any]) -> None:
        """Update check run `check_run_id` with `fields` (as for create_check_run); annotations are appended."""
        self._call(f"update check run {check_run_id}", lambda: self._r().get_check_run(check_run_id).edit(**fields))

    def permission(self, login: str) -> str:
        """'admin', 'maintain', 'write', 'triage', 'read' or 'none' (unknown users are 'none')."""
        try:
            perm = self._r().get_collaborator_permission(login)
        except GithubException as exc:
            if exc.status == 404:
                return "none"
            raise GitHubError(f"permission of {login} on {self.full_name}: {_describe(exc)}") from None
        return str(perm)

    def merged_since(self, since: float) -> list[tuple[int, str]]:
        """(number, merge commit sha) of the PRs merged at or after `since` (unix time), newest update first."""
        def listed() -> list[tuple[int, str]]:
            found = []
            # Sorted by last update, newest first: a PR merged after `since` was updated after it too.
            for p in self._r().get_pulls(state="closed", sort="updated", direction="desc"):
                if p.updated_at is not None and p.updated_at.timestamp() < since:
                    break
                if p.merged_at is not None and p.merged_at.timestamp() >= since and p.merge_commit_sha:
                    found.append((int(p.number), str(p.merge_commit_sha)))
            return found

        return list(self._call("list closed pulls", listed))

    def approved_on(self, number: int, sha: str) -> list[str]:
        """Logins whose latest review of the PR approves commit `sha`."""
        reviews = self._call(f"list reviews of #{number}", lambda: list(self._r().get_pull(number).get_reviews()))
        latest: dict[str, PullRequestReview] = {}
        for review in reviews:
            if review.user and review.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
                latest[review.user.login] = review
        return [login for login, r in latest.items() if r.state == "APPROVED" and r.commit_id == sha]


def _issue_info(issue: Issue) -> IssueInfo:
    return IssueInfo(number=int(issue.number), state=str(issue.state), title=issue.title or "", body=issue.body or "",
                     html_url=str(issue.html_url), labels=tuple(str(label.name) for label in issue.labels),
                     user=str(issue.user.login) if issue.user else "", app_id=_app_id(issue),
                     user_type=str(issue.user.type) if issue.user else "")


def _app_id(issue: Issue) -> int:
    """The id of the GitHub App an issue was opened through; 0 when none. Read from what the listing or the GET
    already returned: `raw_data` would fetch every listed issue again."""
    app = issue._rawData.get("performed_via_github_app")  # noqa: SLF001 - PyGithub keeps the answer here
    return int(app["id"]) if isinstance(app, dict) and isinstance(app.get("id"), int) else 0


def _describe(exc: GithubException) -> str:
    message = exc.data.get("message") if isinstance(exc.data, dict) else str(exc.data or "")
    return f"GitHub answered {exc.status}: {message or 'no message'}"
