"""Sign in with GitHub: the App's OAuth web flow, as GitHub documents it ("Generating a user access token for a
GitHub App"), over `requests`.

1. The browser goes to `{web_url}/login/oauth/authorize?client_id&redirect_uri&state` (`authorize_url`).
2. GitHub sends it back to `redirect_uri?code&state`; the web app checks `state` (bot/web/github_auth.py).
3. `POST {web_url}/login/oauth/access_token` (client_id, client_secret, code, redirect_uri; `Accept:
   application/json`) answers `{"access_token": ...}`, or 200 with `error` and `error_description`.
4. `GET {api_url}/user` with that token names the user.

The user's token serves for step 4 and is then dropped: tfbot never stores it, so there is none to leak or
refresh. What a user may do is asked of GitHub with the App's own token (bot/adapters/github_roles.py).
"""
from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import requests

if TYPE_CHECKING:
    from bot.config import GitHubConfig

log = logging.getLogger(__name__)

# GitHub logins: letters, digits and single hyphens; Enterprise (managed users) adds `_suffix`.
LOGIN_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$")
API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


class SignInError(Exception):
    """The sign-in failed; the message says why in words a user can act on (it never holds a secret)."""


def authorize_url(config: GitHubConfig, redirect_uri: str, state: str) -> str:
    """Where to send the browser to sign in: GitHub's authorize page for the App (pure)."""
    query = urlencode({"client_id": config.client_id, "redirect_uri": redirect_uri, "state": state})
    return f"{config.web_url}/login/oauth/authorize?{query}"


class GitHubOAuth:
    """Turns the code GitHub hands back after sign-in into the user's login."""

    def __init__(self, config: GitHubConfig, http: requests.Session | None = None):
        self.config = config
        self._http = http or requests.Session()

    def login_for_code(self, code: str, redirect_uri: str) -> str:
        """The GitHub login of the user who approved the sign-in that produced `code`.

        One POST to exchange the code (it works once, for ten minutes), one GET of `/user`. Raises SignInError
        when GitHub refuses the code or the App's credentials, cannot be reached, or answers something else.
        """
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
        user = self._json("reading who signed in", "GET", f"{self.config.api_url}/user",
                          headers={**API_HEADERS, "Authorization": f"Bearer {token}"})
        login = user.get("login")
        if not isinstance(login, str) or not LOGIN_RE.match(login):
            raise SignInError("GitHub did not say who signed in. Sign in again.")
        return login

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
