"""Sign in with GitHub: the App's OAuth web flow, as GitHub documents it ("Generating a user access token for a
GitHub App"), over `requests`.

1. The browser goes to `{web_url}/login/oauth/authorize?client_id&redirect_uri&state` (`authorize_url`).
2. GitHub sends it back to `redirect_uri?code&state`; the web app checks `state` (bot/web/github_auth.py).
3. `POST {web_url}/login/oauth/access_token` (client_id, client_secret, code, redirect_uri; `Accept:
   application/json`) answers `{"access_token": ...}`, or 200 with `error` and `error_description`.
4. `GET {api_url}/user` with that token names the user.
5. `GET {api_url}/user/installations` with that token lists the installations of this App the user has explicit
   access to (a repository they own, collaborate on or reach through an organization): none, and the sign-in is
   refused (`NoInstallationAccess`), so a stranger to every installation never gets a session.
6. `GET {api_url}/user/installations/{id}/repositories` per installation lists the repositories the user reaches
   there with their `permissions` flags: the page's hint of which unlock buttons to show. At most
   `MAX_LISTING_PAGES` pages of 100 in all; beyond that, or when a listing fails, the hint is unknown (None).

Every call after the exchange uses the user's token, so it counts against the user's rate limit, never the App's
installations'. The token is then dropped: tfbot never stores it, so there is none to leak or refresh. What a user
may do at the moment of an unlock is asked of GitHub with the App's own token (bot/adapters/github_roles.py).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import requests

from bot.adapters.github_roles import API_HEADERS, role_of_flags

if TYPE_CHECKING:
    from bot.config import GitHubConfig

log = logging.getLogger(__name__)

# GitHub logins: letters, digits and single hyphens; Enterprise (managed users) adds `_suffix`.
LOGIN_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$")
# Pages of 100 listed at sign-in, over all installations, for the unlock hint: 10 pages is 1,000 repositories.
MAX_LISTING_PAGES = 10
PER_PAGE = 100


class SignInError(Exception):
    """The sign-in failed; the message says why in words a user can act on (it never holds a secret)."""


class NoInstallationAccess(SignInError):
    """GitHub knows the user, but they reach no repository where this App is installed: no sign-in."""


@dataclass(frozen=True)
class SignedIn:
    """Who signed in, and their role (one of REPO_ROLES) per repository (lower-cased OWNER/NAME) of the App's
    installations as GitHub listed them for the user's token; `roles` is None when that listing is unknown."""

    login: str
    roles: dict[str, str] | None


def authorize_url(config: GitHubConfig, redirect_uri: str, state: str) -> str:
    """Where to send the browser to sign in: GitHub's authorize page for the App (pure)."""
    query = urlencode({"client_id": config.client_id, "redirect_uri": redirect_uri, "state": state})
    return f"{config.web_url}/login/oauth/authorize?{query}"


class GitHubOAuth:
    """Turns the code GitHub hands back after sign-in into the user's login."""

    def __init__(self, config: GitHubConfig, http: requests.Session | None = None):
        self.config = config
        self._http = http or requests.Session()

    def sign_in(self, code: str, redirect_uri: str) -> SignedIn:
        """The user who approved the sign-in that produced `code`, if they may sign in, and their roles.

        One POST to exchange the code (it works once, for ten minutes), then with the user's token: `GET /user`,
        `GET /user/installations` and at most MAX_LISTING_PAGES pages of repositories. Raises
        NoInstallationAccess when the user reaches no installation of the App, and SignInError when GitHub
        refuses the code or the App's credentials, cannot be reached, or answers something else.
        """
        token = self._exchange(code, redirect_uri)
        headers = {**API_HEADERS, "Authorization": f"Bearer {token}"}
        user = self._json("reading who signed in", "GET", f"{self.config.api_url}/user", headers=headers)
        login = user.get("login")
        if not isinstance(login, str) or not LOGIN_RE.match(login):
            raise SignInError("GitHub did not say who signed in. Sign in again.")
        installations = self._installations(headers)
        if not installations:
            log.warning("refused the GitHub sign-in of %s: they reach no installation of the App", login)
            raise NoInstallationAccess(
                f"Your GitHub account ({login}) has no access to a repository where tfbot is installed, so it "
                "cannot sign in here. Ask for access to one of those repositories, or sign in with another "
                "account.")
        return SignedIn(login, self._roles(headers, installations))

    def _exchange(self, code: str, redirect_uri: str) -> str:
        answer = self._json("exchanging the sign-in code", "POST", f"{self.config.web_url}/login/oauth/access_token",
                            data={"client_id": self.config.client_id, "client_secret": self.config.client_secret,
                                  "code": code, "redirect_uri": redirect_uri},
                            headers={"Accept": "application/json"})
        if answer.get("error"):
            error, description = str(answer["error"])[:100], str(answer.get("error_description") or "")[:300]
            log.warning("GitHub refused a sign-in code: %s (%s)", error, description)
            if error == "incorrect_client_credentials":
                raise SignInError("GitHub refused tfbot's client ID or secret (github.client_id, "
                                  "github.client_secret): tell the person who runs tfbot.")
            raise SignInError(f"GitHub refused the sign-in: {description or error}. Sign in again.")
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise SignInError("GitHub answered the sign-in without an access token. Sign in again.")
        return token

    def _installations(self, headers: dict[str, str]) -> list[int]:
        """Ids of the App's installations the user reaches (`GET /user/installations`, every page)."""
        found: list[int] = []
        for page in range(1, MAX_LISTING_PAGES + 1):
            answer = self._json("listing where tfbot is installed for you", "GET",
                                f"{self.config.api_url}/user/installations", headers=headers,
                                params={"per_page": PER_PAGE, "page": page})
            items = answer.get("installations")
            if not isinstance(items, list):
                raise SignInError("GitHub's list of installations was not the JSON it documents. Try again.")
            for item in items:
                # The user's token of this App lists this App's installations only; checked all the same.
                if isinstance(item, dict) and isinstance(item.get("id"), int) and (
                        self.config.app_id is None or item.get("app_id") in (None, self.config.app_id)):
                    found.append(item["id"])
            if len(items) < PER_PAGE:
                break
        return found

    def _roles(self, headers: dict[str, str], installations: list[int]) -> dict[str, str] | None:
        """The user's role per repository over `installations`, or None when GitHub's listing cannot be had whole
        (an error, or more than MAX_LISTING_PAGES pages): the page then draws no hint (bot/web/repo_roles.py)."""
        roles: dict[str, str] = {}
        pages = 0
        for installation in installations:
            for page in range(1, MAX_LISTING_PAGES + 1):
                pages += 1
                if pages > MAX_LISTING_PAGES:
                    log.info("more than %d pages of repositories for one user: the page shows every unlock "
                             "button, and GitHub decides at the unlock", MAX_LISTING_PAGES)
                    return None
                try:
                    answer = self._json("listing your repositories", "GET",
                                        f"{self.config.api_url}/user/installations/{installation}/repositories",
                                        headers=headers, params={"per_page": PER_PAGE, "page": page})
                except SignInError:
                    return None  # logged by _json; the sign-in stands, the hint is unknown
                items = answer.get("repositories")
                if not isinstance(items, list):
                    return None
                for item in items:
                    name = item.get("full_name") if isinstance(item, dict) else None
                    if isinstance(name, str):
                        roles[name.lower()] = role_of_flags(item.get("permissions"))
                if len(items) < PER_PAGE:
                    break
        return roles

    def _json(self, what: str, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, url, timeout=self.config.timeout, allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            log.warning("GitHub sign-in: %s failed: %s", what, type(exc).__name__)
            raise SignInError(f"GitHub could not be reached while {what} ({type(exc).__name__}). "
                              "Try again in a moment.") from None
        if response.status_code != 200:
            log.warning("GitHub sign-in: %s: GitHub answered %d", what, response.status_code)
            raise SignInError(f"GitHub answered {response.status_code} while {what}. Try again in a moment.")
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise SignInError(f"GitHub's answer while {what} was not the JSON it documents. Try again.")
        return data
