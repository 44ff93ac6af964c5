"""A user's role on a repository, as GitHub reports it to the App: what the lock page asks before an unlock.

The web process may not use the worker's GitHub adapter (it never runs a pipeline), and it needs far less:
`GET /repos/{owner}/{repo}/collaborators/{login}/permission` with a token of the App's installation. It mints
that token itself, narrowed to the one repository and to `metadata: read` (all this endpoint needs), so the web
process never holds a token that can write. Tokens and installation ids are kept in this process's memory
until shortly before they expire; nothing goes to Redis.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote

import requests

from bot.adapters.app_jwt import app_claims, rs256_signer
from bot.adapters.logs import masker
from bot.models import REPO_ROLES

if TYPE_CHECKING:
    from bot.config import GitHubConfig

log = logging.getLogger(__name__)

API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
# Mint a new token this long before GitHub's expiry, so a check never goes out with a dead one.
TOKEN_MARGIN_SECONDS = 300
# GitHub's short names of the roles in the `permissions` flags of a collaborator.
_FLAG_ROLES = {"pull": "read", "triage": "triage", "push": "write", "maintain": "maintain", "admin": "admin"}


class RoleLookupError(Exception):
    """GitHub could not say what the user may do on the repository; the message names the call and the answer."""


def role_of_flags(flags: Any) -> str:
    """The highest role GitHub's `permissions` flags of a user on a repository grant (`{"admin": false, "maintain":
    true, "push": true, ...}`, as listed with a repository): one of REPO_ROLES, or "none" (pure)."""
    found = [role for flag, role in _FLAG_ROLES.items() if isinstance(flags, dict) and flags.get(flag) is True]
    return max(found, key=REPO_ROLES.index) if found else "none"


def effective_role(answer: dict[str, Any]) -> str:
    """The user's role from GitHub's answer to `.../collaborators/{login}/permission`: one of REPO_ROLES or "none".

    `permission` holds the legacy base roles only (maintain reads "write", triage reads "read"); `role_name` holds
    the full name, or the name of an organization's custom role; `user.permissions` flags the base role a custom
    role inherits. Each is a floor of what the user may do: the highest of them counts (pure).
    """
    user = answer.get("user")
    found = [answer.get("permission"), answer.get("role_name"),
             role_of_flags(user.get("permissions") if isinstance(user, dict) else None)]
    ranks = [REPO_ROLES.index(role) for role in found if role in REPO_ROLES]
    return REPO_ROLES[max(ranks)] if ranks else "none"


class RepoRoles:
    """Asks GitHub, as the App, which role a user has on a repository (thread-safe: the web serves threads)."""

    def __init__(self, config: GitHubConfig, http: requests.Session | None = None,
                 clock: Callable[[], float] = time.time):
        self.config = config
        self._http = http or requests.Session()
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}  # lower-cased OWNER/NAME -> (token, expiry)
        self._sign: Callable[[dict[str, Any]], str] | None = None

    def role(self, repo: str, login: str) -> str:
        """`login`'s role on `repo` (OWNER/NAME) right now: one of REPO_ROLES, or "none" for no access or an
        unknown user. Raises RoleLookupError when GitHub cannot tell (down, the App not installed there)."""
        owner, _, name = repo.partition("/")
        path = f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}/collaborators/{quote(login, safe='')}/permission"
        for attempt in (1, 2):
            response = self._call("GET", path, f"Bearer {self._token(repo)}")
            if response.status_code == 401 and attempt == 1:
                with self._lock:  # revoked or expired early: mint another once
                    self._tokens.pop(repo.lower(), None)
                continue
            break
        if response.status_code == 404:
            return "none"  # GitHub's answer for a login that is no user
        return effective_role(self._json(response, f"the role of {login} on {repo}"))

    def _token(self, repo: str) -> str:
        with self._lock:
            cached = self._tokens.get(repo.lower())
        if cached and cached[1] - self._clock() > TOKEN_MARGIN_SECONDS:
            return cached[0]
        owner, _, name = repo.partition("/")
        where = self._json(self._call("GET", f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}/installation",
                                      f"Bearer {self._jwt()}"), f"the App's installation on {repo}")
        installation = where.get("id")
        if not isinstance(installation, int):
            raise RoleLookupError(f"GitHub named no installation of the App on {repo}")
        minted = self._json(self._call("POST", f"/app/installations/{installation}/access_tokens",
                                       f"Bearer {self._jwt()}", {"repositories": [name],
                                                                 "permissions": {"metadata": "read"}}),
                            f"a token for {repo}", ok=201)
        token, expires = minted.get("token"), _timestamp(minted.get("expires_at"))
        if not isinstance(token, str) or not token:
            raise RoleLookupError(f"GitHub minted no token for {repo}")
        masker().add(token)
        with self._lock:
            self._tokens[repo.lower()] = (token, expires or self._clock() + 3600)
        return token

    def _jwt(self) -> str:
        if self.config.app_id is None:
            raise RoleLookupError("github.app_id is not set: the App's own endpoints need it")
        if self._sign is None:
            try:
                self._sign = rs256_signer(self.config.private_key)
            except ValueError as exc:
                raise RoleLookupError(str(exc)) from None
        return self._sign(app_claims(self.config.app_id, self._clock()))

    def _call(self, method: str, path: str, authorization: str, body: Any = None) -> requests.Response:
        try:
            return self._http.request(method, self.config.api_url + path, json=body, timeout=self.config.timeout,
                                      headers={**API_HEADERS, "Authorization": authorization},
                                      allow_redirects=False)
        except requests.RequestException as exc:
            raise RoleLookupError(f"GitHub could not be reached ({type(exc).__name__})") from None

    @staticmethod
    def _json(response: requests.Response, what: str, ok: int = 200) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != ok or not isinstance(data, dict):
            message = data.get("message") if isinstance(data, dict) else None
            raise RoleLookupError(f"asking for {what}: GitHub answered {response.status_code}: "
                                  f"{str(message or 'no message')[:200]}")
        return data


def _timestamp(value: Any) -> float | None:
    """GitHub's `2024-01-02T03:04:05Z` as unix time, or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
