"""A stateful fake of GitHub's REST API for a GitHub App, served over real HTTP on 127.0.0.1.

Tests drive it with the real PyGithub client (`base_url=fake.base_url`) exactly
as the bot does: an app JWT buys an installation token, the token calls the
API. Tests set the world up and read it back through plain methods here
(`add_repo`, `add_pull`, `comments`, `statuses`, ...), and make GitHub
misbehave with `fail_next`. Shapes, status codes and paging follow GitHub's
documentation; see fake_github_routes_*.py for the endpoints, and fake_github_oauth.py
for the App's OAuth web flow (`authorize_as` picks who approves on its authorize page).

Layout: state (records) -> payloads (JSON shapes) -> routes (endpoints) ->
dispatch (faults, auth, routing) -> http (server, paging, errors); this module
wires them and is the public API.
"""
from __future__ import annotations

import http
import time
import uuid
from typing import Any, Callable, Optional, Union

from tests.support import fake_github_git as git
from tests.support.fake_github_access import find_commit
from tests.support.fake_github_auth import make_app_keypair
from tests.support.fake_github_dispatch import Dispatcher
from tests.support.fake_github_http import Ctx, HttpServer, error_body
from tests.support.fake_github_payloads import Payloads, iso
from tests.support.fake_github_routes_checks import statuses_newest_first
from tests.support.fake_github_routes_issues import MAX_COMMENT_LENGTH, post_comment
from tests.support.fake_github_state import (
    Delivery,
    Fault,
    MutationFault,
    Installation,
    Issue,
    Pull,
    RecordedRequest,
    Repo,
    Review,
    State,
)

__all__ = ["FakeGitHub", "RecordedRequest", "make_app_keypair"]

DEFAULT_PERMISSIONS = {
    "checks": "write", "contents": "write", "issues": "write", "metadata": "read",
    "pull_requests": "write", "statuses": "write",
}
DEFAULT_EVENTS = ["issue_comment", "pull_request", "pull_request_review", "push"]
ROLES = ("read", "triage", "write", "maintain", "admin")
_SECONDARY_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID FAKE:0000."
)


class FakeGitHub:
    """GitHub for one GitHub App (`app_id`, verified with `public_key_pem`), its installations and repos.

    `private_key_pem` is only kept for test helpers that sign JWTs as the app;
    the fake itself verifies with the public key, as GitHub does.
    `api_prefix="/api/v3"` serves GitHub Enterprise style paths.
    """

    def __init__(
        self,
        app_id: int,
        public_key_pem: Union[bytes, str],
        *,
        app_slug: str = "tfbot",
        app_owner: str = "acme",
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        token_lifetime: float = 3600.0,
        api_prefix: str = "",
        private_key_pem: Optional[bytes] = None,
    ) -> None:
        pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
        self._state = State(
            app_id=int(app_id), app_slug=app_slug, app_owner=app_owner,
            client_id=client_id or f"Iv1.fake{app_id:08d}", public_key_pem=pem, token_lifetime=token_lifetime,
            client_secret=client_secret or f"fake-client-secret-{app_id}",
        )
        self._state.ensure_user(self._state.bot_login, type="Bot")
        self._prefix = api_prefix.rstrip("/")
        self._dispatcher = Dispatcher(self._state, self._prefix)
        self._server: Optional[HttpServer] = None
        self._stopped = False
        self.private_key_pem = private_key_pem

    # ---- lifecycle -------------------------------------------------------------

    def start(self) -> str:
        """Serve on an ephemeral port of 127.0.0.1 in a daemon thread; returns `base_url`."""
        if self._server is not None:
            raise RuntimeError("FakeGitHub already started")
        self._server = HttpServer(self._dispatcher)
        self._dispatcher.ctx = Ctx(self._state, Payloads(self._state, self.base_url, self.web_url))
        self._server.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving (idempotent); the recorded state stays readable."""
        if self._server is not None and not self._stopped:
            self._stopped = True
            self._server.stop()

    def __enter__(self) -> "FakeGitHub":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def web_url(self) -> str:
        """Root of html_url links (`http://127.0.0.1:PORT`)."""
        if self._server is None:
            raise RuntimeError("FakeGitHub not started")
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def base_url(self) -> str:
        """What to give PyGithub as `base_url`: `http://127.0.0.1:PORT` plus any API prefix."""
        return self.web_url + self._prefix

    @property
    def app_id(self) -> int:
        return self._state.app_id

    @property
    def app_slug(self) -> str:
        return self._state.app_slug

    @property
    def client_id(self) -> str:
        """The App's client ID (`Iv1....`), for the OAuth web flow."""
        return self._state.client_id

    @property
    def client_secret(self) -> str:
        """The App's client secret: the code exchange refuses any other."""
        return self._state.client_secret

    @property
    def bot_login(self) -> str:
        """The login the app's comments, statuses and reviews appear under: `<slug>[bot]`."""
        return self._state.bot_login

    # ---- setup -------------------------------------------------------------------

    def add_installation(self, installation_id: int, account_login: str, *, account_type: str = "Organization",
                         permissions: Optional[dict[str, str]] = None, events: Optional[list[str]] = None,
                         repository_selection: str = "all") -> dict[str, Any]:
        """Install the app on `account_login`; returns the installation JSON."""
        with self._state.lock:
            self._state.ensure_user(account_login, type=account_type)
            inst = Installation(installation_id, account_login, dict(permissions or DEFAULT_PERMISSIONS),
                                list(events or DEFAULT_EVENTS), repository_selection)
            self._state.installations[installation_id] = inst
            return self._pay.installation(inst)

    def suspend_installation(self, installation_id: int, suspended: bool = True) -> None:
        """Suspend (or unsuspend) an installation: its tokens then get 403."""
        with self._state.lock:
            self._state.installations[installation_id].suspended = suspended

    def add_user(self, login: str, *, type: str = "User", name: Optional[str] = None,
                 email: Optional[str] = None, site_admin: bool = False) -> dict[str, Any]:
        """Declare a user (users named elsewhere are created on first mention); returns its JSON."""
        with self._state.lock:
            user = self._state.ensure_user(login, type=type)
            user.type, user.name, user.email, user.site_admin = type, name, email, site_admin
            return self._pay.user(user)

    def add_repo(self, full_name: str, clone_url: str, default_branch: str = "main", *,
                 installation_id: Optional[int] = None, private: bool = True) -> dict[str, Any]:
        """Add a repository, by default in the installation of its owner's account; returns its JSON."""
        owner, _, name = full_name.partition("/")
        with self._state.lock:
            if installation_id is None:
                installation_id = self._installation_for(owner)
            self._state.ensure_user(owner, type="Organization")
            repo = Repo(id=self._state.next_id("repo"), owner=owner, name=name, clone_url=clone_url,
                        default_branch=default_branch, private=private, installation_id=installation_id)
            self._state.repos[full_name.lower()] = repo
            return self._pay.repo(repo)

    def set_permission(self, repo: str, login: str, role: Optional[str]) -> None:
        """Give `login` a role on `repo` (read, triage, write, maintain, admin); None or "none" removes it."""
        with self._state.lock:
            found = self._repo(repo)
            user = self._state.ensure_user(login)
            if role in (None, "none"):
                found.collaborators.pop(user.login, None)
            elif role in ROLES:
                found.collaborators[user.login] = role
            else:
                raise ValueError(f"unknown role {role!r}; one of {ROLES}")

    def add_commit(self, repo: str, sha: str) -> None:
        """Make a sha known without a local git repository behind `repo`."""
        with self._state.lock:
            self._repo(repo).known_shas.add(sha)

    def add_pull(self, repo: str, number: Optional[int] = None, *, head_ref: str, user: str,
                 head_sha: Optional[str] = None, base_ref: Optional[str] = None, base_sha: Optional[str] = None,
                 title: Optional[str] = None, body: str = "", draft: bool = False, fork: bool = False,
                 head_repo: Optional[str] = None, files: Optional[list[Union[str, dict]]] = None,
                 mergeable: Optional[bool] = True, mergeable_state: str = "clean") -> dict[str, Any]:
        """Open a pull request; returns its JSON (as `GET /pulls/{n}` would).

        Missing shas are read from the branches of the local clone_url repository.
        `fork=True` puts the head in `<user>/<name>` (a public fork sharing the clone url)
        unless `head_repo` names it. `files` overrides the changed files GitHub would
        list (paths or file dicts); by default they come from `git diff base...head`.
        """
        with self._state.lock:
            base = self._repo(repo)
            head_full = head_repo or (f"{user}/{base.name}" if fork else base.full_name)
            head = self._state.repo(head_full) or self._add_fork(base, head_full)
            base_ref = base_ref or base.default_branch
            head_sha = head_sha or find_commit(self._state, head, head_ref) or find_commit(self._state, base, head_ref)
            base_sha = base_sha or find_commit(self._state, base, base_ref)
            if head_sha is None or base_sha is None:
                raise ValueError(f"add_pull: give head_sha/base_sha, no commit found for {head_ref}/{base_ref}")
            if number is None:
                number = base.last_number + 1
            if (base.full_name, number) in self._state.issues:
                raise ValueError(f"{repo} already has issue or pull #{number}")
            base.last_number = max(base.last_number, number)
            self._state.ensure_user(user)
            pull = Pull(repo=base.full_name, number=number, id=self._state.next_id("issue"),
                        pull_id=self._state.next_id("pull"), title=title or f"Update from {head_ref}", body=body,
                        user=user, draft=draft, head_ref=head_ref, head_sha=head_sha, head_repo=head.full_name,
                        base_ref=base_ref, base_sha=base_sha, mergeable=mergeable,
                        mergeable_state=mergeable_state, files=_file_dicts(files))
            self._state.issues[(base.full_name, number)] = pull
            self._remember_shas(pull)
            return self._pay.pull(pull)

    def update_pull(self, repo: str, number: int, **fields: Any) -> dict[str, Any]:
        """Change a pull request as GitHub would after a push, close or merge; returns its JSON.

        Fields: title, body, state, draft, head_sha, head_ref, base_sha, base_ref, merged,
        merge_commit_sha, merged_by, mergeable, mergeable_state, files, locked.
        `merged=True` also closes it and sets merged_at; `state` sets or clears closed_at.
        """
        allowed = {"title", "body", "state", "draft", "head_sha", "head_ref", "base_sha", "base_ref", "merged",
                   "merge_commit_sha", "merged_by", "mergeable", "mergeable_state", "files", "locked"}
        unknown = set(fields) - allowed
        if unknown:
            raise TypeError(f"update_pull: unknown fields {sorted(unknown)}")
        with self._state.lock:
            pull = self._pull(repo, number)
            now = time.time()
            merging, compared_base = bool(fields.get("merged")) and not pull.merged, pull.base_sha
            if "files" in fields:
                fields["files"] = _file_dicts(fields["files"])
            for name, value in fields.items():
                setattr(pull, name, value)
            if "state" in fields:
                pull.closed_at = now if pull.state == "closed" else None
            if merging:
                pull.state, pull.merged_at, pull.closed_at = "closed", now, now
                pull.mergeable_state = "unknown"
                if pull.files is None:
                    self._freeze_files(pull, compared_base)
            pull.updated_at = now
            self._remember_shas(pull)
            return self._pay.pull(pull)

    def add_issue(self, repo: str, *, title: str, user: str, body: str = "", via_app: bool = False) -> dict[str, Any]:
        """Open a plain issue (not a pull request); returns its JSON. `via_app`: opened through the App, as its
        installation token opens one (`performed_via_github_app` names the App; pass user=self.bot_login)."""
        with self._state.lock:
            found = self._repo(repo)
            found.last_number += 1
            self._state.ensure_user(user)
            issue = Issue(repo=found.full_name, number=found.last_number, id=self._state.next_id("issue"),
                          title=title, body=body, user=user, via_app=via_app)
            self._state.issues[(found.full_name, issue.number)] = issue
            return self._pay.issue(issue)

    def issues(self, repo: str, label: Optional[str] = None) -> list[dict[str, Any]]:
        """The plain issues (not pull requests) of `repo`, oldest first, as the API shows them; with `label`, only
        those carrying it."""
        with self._state.lock:
            full_name = self._repo(repo).full_name
            found = sorted((i for (r, _), i in self._state.issues.items() if r == full_name
                            and not isinstance(i, Pull) and (label is None or label in i.labels)),
                           key=lambda i: i.number)
            return [self._pay.issue(i) for i in found]

    def close_issue(self, repo: str, number: int) -> dict[str, Any]:
        """Close an issue, as a person does with the Close button; returns its JSON."""
        with self._state.lock:
            issue = self._state.issues[(self._repo(repo).full_name, number)]
            issue.state, issue.closed_at = "closed", time.time()
            return self._pay.issue(issue)

    def add_review(self, repo: str, number: int, user: str, state: str = "APPROVED",
                   commit_id: Optional[str] = None, body: str = "") -> dict[str, Any]:
        """Record a review by a human (APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED); returns its JSON."""
        with self._state.lock:
            pull = self._pull(repo, number)
            self._state.ensure_user(user)
            review = Review(id=self._state.next_id("review"), repo=pull.repo, number=pull.number, user=user,
                            state=state, body=body, commit_id=commit_id or pull.head_sha, submitted_at=time.time())
            self._state.reviews[review.id] = review
            return self._pay.review(review)

    def dismiss_review(self, repo: str, number: int, review_id: int) -> dict[str, Any]:
        """What `PUT /repos/{owner}/{repo}/pulls/{n}/reviews/{id}/dismissals` does: the review's state becomes
        DISMISSED (it stays listed, with its commit); returns its JSON."""
        with self._state.lock:
            pull = self._pull(repo, number)
            review = self._state.reviews[review_id]
            if (review.repo, review.number) != (pull.repo, pull.number):
                raise ValueError(f"review {review_id} is not on {repo}#{number}")
            review.state = "DISMISSED"
            return self._pay.review(review)

    def add_comment(self, repo: str, number: int, user: str, body: str) -> dict[str, Any]:
        """A comment posted by a human; returns it exactly as the API (and the webhook) shows it."""
        if len(body) > MAX_COMMENT_LENGTH:
            raise ValueError("GitHub refuses comments over 65536 characters")
        with self._state.lock:
            issue = self._state.issues.get((self._repo(repo).full_name, number))
            if issue is None:
                raise KeyError(f"{repo} has no issue or pull #{number}")
            return self._pay.comment(post_comment(self._ctx_or_fail(), issue, user, body, via_app=False))

    def add_hook_delivery(self, event: str, payload: dict[str, Any], *, action: Optional[str] = None,
                          guid: Optional[str] = None, status_code: int = 200,
                          installation_id: Optional[int] = None, repository_id: Optional[int] = None,
                          headers: Optional[dict[str, str]] = None) -> dict[str, Any]:
        """Record a webhook delivery for `GET /app/hook/deliveries`; returns its full JSON."""
        with self._state.lock:
            delivery = Delivery(
                id=self._state.next_id("delivery"), guid=guid or str(uuid.uuid4()), event=event,
                action=action if action is not None else payload.get("action"), status_code=status_code,
                installation_id=installation_id, repository_id=repository_id, payload=payload,
                request_headers=dict(headers or {}), delivered_at=time.time(),
            )
            self._state.deliveries[delivery.id] = delivery
            return self._pay.delivery(delivery, full=True)

    def set_redeliver_hook(self, hook: Optional[Callable[[dict[str, Any]], Optional[int]]]) -> None:
        """Call `hook(delivery_json)` on each `POST .../attempts`; an int it returns becomes the status code."""
        with self._state.lock:
            self._state.on_redeliver = hook

    # ---- the OAuth web flow ---------------------------------------------------------

    def authorize_as(self, login: Optional[str], callback_url: str = "") -> None:
        """Who is signed in to GitHub in the browser and approves the App at `/login/oauth/authorize` from now on;
        None: they press Cancel (back to the App with `error=access_denied`). `callback_url` registers the App's
        callback URL, used when the authorize request names no redirect_uri."""
        with self._state.lock:
            if login is not None:
                self._state.ensure_user(login)
            self._state.oauth_user = login
            if callback_url:
                self._state.oauth_callback_url = callback_url

    def user_tokens(self) -> dict[str, str]:
        """User access tokens issued by the code exchange so far: token -> login."""
        with self._state.lock:
            return dict(self._state.user_tokens)

    # ---- faults and tokens -------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 502, path_contains: Optional[str] = None,
                  headers: Optional[dict[str, str]] = None, body: Any = None,
                  method: Optional[str] = None) -> None:
        """Answer the next `count` matching requests with `status` instead of serving them.

        403 and 429 default to GitHub's secondary-rate-limit message; add
        `headers={"Retry-After": "0"}` for a retryable one.
        """
        if body is None:
            if status in (403, 429):
                body = error_body(status, _SECONDARY_LIMIT,
                                  "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api")
            else:
                body = error_body(status, "Server Error" if status >= 500 else http.HTTPStatus(status).phrase)
        with self._state.lock:
            self._state.faults.append(Fault(count, status, path_contains, method, dict(headers or {}), body))

    def fail_mutation(self, mutation: str, count: int = 1, kind: str = "UNPROCESSABLE",
                      message: str = "Something went wrong while executing your query.") -> None:
        """Make the next `count` GraphQL mutations named `mutation` (e.g. updateCheckRun) fail with error type
        `kind`, each by itself: the other mutations of their document still run, as GitHub runs them."""
        with self._state.lock:
            self._state.mutation_faults.append(MutationFault(count, mutation, kind, message))

    def expire_tokens(self, installation_id: Optional[int] = None) -> None:
        """Make issued installation tokens (of one installation, or all) expire now."""
        with self._state.lock:
            for token in self._state.tokens.values():
                if installation_id is None or token.installation_id == installation_id:
                    token.expires_at = min(token.expires_at, time.time() - 1)

    def issued_tokens(self) -> list[dict[str, Any]]:
        """Tokens issued so far, oldest first: token, installation_id, expires_at, permissions, repositories, revoked."""
        with self._state.lock:
            return [
                {"token": value, "installation_id": t.installation_id, "expires_at": iso(t.expires_at),
                 "permissions": dict(t.permissions), "repositories": sorted(t.repositories or []) or None,
                 "revoked": t.revoked}
                for value, t in self._state.tokens.items()
            ]

    # ---- inspection --------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered so far, oldest first (a copy)."""
        with self._state.lock:
            return list(self._state.log)

    def reset_requests(self) -> None:
        """Forget the request log."""
        with self._state.lock:
            self._state.log.clear()

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        """Comments on issue/PR `number`, oldest first: id, body, user (login), user_type, minimized, ..."""
        with self._state.lock:
            full_name = self._repo(repo).full_name
            found = sorted((c for c in self._state.comments.values() if (c.repo, c.number) == (full_name, number)),
                           key=lambda c: c.id)
            return [
                {"id": c.id, "body": c.body, "user": c.user, "user_type": self._state.ensure_user(c.user).type,
                 "minimized": c.minimized, "minimized_reason": c.minimized_reason,
                 "created_at": iso(c.created_at), "updated_at": iso(c.updated_at)}
                for c in found
            ]

    def statuses(self, repo: str, sha: str) -> list[dict[str, Any]]:
        """Commit statuses of `sha`, newest first: id, state, context, description, target_url, creator."""
        with self._state.lock:
            found = statuses_newest_first(self._ctx_or_fail(), self._repo(repo), sha)
            return [
                {"id": s.id, "state": s.state, "context": s.context, "description": s.description,
                 "target_url": s.target_url, "creator": s.creator, "created_at": iso(s.created_at)}
                for s in found
            ]

    def latest_status(self, repo: str, sha: str, context: str) -> Optional[dict[str, Any]]:
        """The newest status of `sha` for `context`, or None."""
        return next((s for s in self.statuses(repo, sha) if s["context"] == context), None)

    def reactions(self, repo: str, comment_id: int) -> list[dict[str, Any]]:
        """Reactions on an issue comment, oldest first: id, content, user (login)."""
        with self._state.lock:
            self._repo(repo)
            return [
                {"id": r.id, "content": r.content, "user": r.user}
                for r in sorted(self._state.reactions.values(), key=lambda r: r.id)
                if r.subject == ("comment", comment_id)
            ]

    def reviews(self, repo: str, number: int) -> list[dict[str, Any]]:
        """Reviews of a pull request, oldest first, as the API shows them."""
        with self._state.lock:
            pull = self._pull(repo, number)
            return [self._pay.review(r) for r in sorted(self._state.reviews.values(), key=lambda r: r.id)
                    if (r.repo, r.number) == (pull.repo, pull.number)]

    def check_runs(self, repo: str, sha: Optional[str] = None) -> list[dict[str, Any]]:
        """Check runs of `repo` (of one head sha if given), oldest first, as the API shows them."""
        with self._state.lock:
            full_name = self._repo(repo).full_name
            return [self._pay.check_run(r) for r in sorted(self._state.check_runs.values(), key=lambda r: r.id)
                    if r.repo == full_name and (sha is None or r.head_sha == sha)]

    def check_run(self, repo: str, run_id: int) -> dict[str, Any]:
        """One check run as the API shows it, plus what the API does not echo: its `actions` as last written and
        every `annotations` entry written to it (GitHub appends each request's)."""
        with self._state.lock:
            run = self._state.check_runs.get(run_id)
            if run is None or run.repo != self._repo(repo).full_name:
                raise KeyError(f"{repo} has no check run {run_id}")
            return {**self._pay.check_run(run), "actions": [dict(a) for a in run.actions],
                    "annotations": [dict(a) for a in run.annotations]}

    def redelivery_attempts(self) -> list[int]:
        """Ids of the deliveries redelivered through the API, in order."""
        with self._state.lock:
            return list(self._state.redelivery_attempts)

    # ---- payloads for webhook builders -------------------------------------------

    def pull_payload(self, repo: str, number: int) -> dict[str, Any]:
        """The pull request exactly as `GET /repos/{o}/{r}/pulls/{n}` returns it."""
        with self._state.lock:
            return self._pay.pull(self._pull(repo, number))

    def issue_payload(self, repo: str, number: int) -> dict[str, Any]:
        """The issue (or PR as an issue) exactly as `GET /repos/{o}/{r}/issues/{n}` returns it."""
        with self._state.lock:
            issue = self._state.issues.get((self._repo(repo).full_name, number))
            if issue is None:
                raise KeyError(f"{repo} has no issue or pull #{number}")
            return self._pay.issue(issue)

    def repo_payload(self, repo: str) -> dict[str, Any]:
        """The repository exactly as `GET /repos/{o}/{r}` returns it."""
        with self._state.lock:
            return self._pay.repo(self._repo(repo))

    def comment_payload(self, comment_id: int) -> dict[str, Any]:
        """An issue comment exactly as the API returns it."""
        with self._state.lock:
            return self._pay.comment(self._state.comments[comment_id])

    def user_payload(self, login: str) -> dict[str, Any]:
        """A user as embedded in API objects (`sender`, `user`)."""
        with self._state.lock:
            return self._pay.login(login)

    def installation_payload(self, installation_id: int) -> dict[str, Any]:
        """An installation as `GET /app/installations/{id}` returns it."""
        with self._state.lock:
            return self._pay.installation(self._state.installations[installation_id])

    def app_payload(self) -> dict[str, Any]:
        """The app as `GET /app` returns it."""
        with self._state.lock:
            return self._pay.app()

    # ---- internals -----------------------------------------------------------------

    @property
    def _pay(self) -> Payloads:
        return self._ctx_or_fail().pay

    def _ctx_or_fail(self) -> Ctx:
        # Payload urls embed the port, so the fake must be serving before it builds any.
        if self._dispatcher.ctx is None:
            raise RuntimeError("start() the FakeGitHub before adding or reading objects")
        return self._dispatcher.ctx

    def _repo(self, full_name: str) -> Repo:
        repo = self._state.repo(full_name)
        if repo is None:
            raise KeyError(f"fake GitHub has no repository {full_name!r}")
        return repo

    def _pull(self, repo: str, number: int) -> Pull:
        pull = self._state.issues.get((self._repo(repo).full_name, number))
        if not isinstance(pull, Pull):
            raise KeyError(f"{repo} has no pull request #{number}")
        return pull

    def _installation_for(self, owner: str) -> Optional[int]:
        for inst in self._state.installations.values():
            if inst.account_login.lower() == owner.lower():
                return inst.id
        return None

    def _add_fork(self, base: Repo, full_name: str) -> Repo:
        owner, _, name = full_name.partition("/")
        self._state.ensure_user(owner)
        fork = Repo(id=self._state.next_id("repo"), owner=owner, name=name, clone_url=base.clone_url,
                    default_branch=base.default_branch, private=False, installation_id=None, fork=True,
                    parent=base.full_name)
        self._state.repos[full_name.lower()] = fork
        return fork

    def _freeze_files(self, pull: Pull, compared_base: str) -> None:
        # GitHub fixes a merged PR's file list at merge time: later moves of its
        # branches (or a base sha set to the merge commit) do not change it.
        merged_base, pull.base_sha = pull.base_sha, compared_base
        pull.files = self._pay.raw_pull_files(pull)
        pull.base_sha = merged_base

    def _remember_shas(self, pull: Pull) -> None:
        # Without a local repository the fake only knows the shas it was told.
        for full_name in {pull.repo, pull.head_repo}:
            repo = self._repo(full_name)
            repo.known_shas.update(s for s in (pull.head_sha, pull.base_sha, pull.merge_commit_sha) if s)
            if git.local_git_dir(repo.clone_url) is None:
                repo.branches[pull.head_ref] = pull.head_sha


def _file_dicts(files: Optional[list[Union[str, dict]]]) -> Optional[list[dict[str, Any]]]:
    if files is None:
        return None
    return [{"filename": f, "status": "modified", "additions": 1, "deletions": 0} if isinstance(f, str)
            else dict(f) for f in files]

