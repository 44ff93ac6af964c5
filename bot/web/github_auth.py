"""Sign in with GitHub on the lock page: `GET /auth/github` sends the browser to GitHub, `GET /auth/github/callback`
brings it back signed in.

Offered when `github.client_id` and `github.client_secret` are set. The `state` sent to GitHub is random, kept in
the session, single use, at most ten minutes old and compared in constant time: a callback this browser did not
start is refused, so nobody can sign someone else in under their own account. The session (signed, not encrypted)
holds the GitHub login only; GitHub's token for the user is used once to learn that login and then dropped
(bot/adapters/github_oauth.py). What the user may unlock is asked of GitHub at the moment of the unlock.
"""
from __future__ import annotations

import hmac
import logging
import secrets
import time

from flask import Blueprint, abort, current_app, flash, redirect, request, session, url_for

from bot.adapters.github_oauth import SignInError, authorize_url
from bot.web.auth import safe_next
from bot.web.repo_roles import ShownRoles

log = logging.getLogger(__name__)
bp = Blueprint("github_auth", __name__)

CALLBACK_PATH = "/auth/github/callback"
STATE_SECONDS = 600  # as long as GitHub keeps the code it hands back


def sign_in_offered() -> bool:
    """Whether the page offers "Sign in with GitHub" (the App's client ID and secret are configured)."""
    return bool(current_app.extensions["tfbot"].config.github.sign_in)


def current_github_user() -> str | None:
    """The GitHub login this session signed in as, or None (also when GitHub sign-in has been turned off)."""
    login = session.get("github")
    return str(login) if login and sign_in_offered() else None


def redirect_uri() -> str:
    """The callback URL GitHub sends the browser back to: under `server.public_url` when set (it must be one of
    the App's callback URLs), else this request's own host."""
    public = current_app.extensions["tfbot"].config.server.public_url
    return public + CALLBACK_PATH if public else url_for("github_auth.callback", _external=True)


@bp.get("/auth/github")
def start():  # type: ignore[no-untyped-def]
    if not sign_in_offered():
        abort(404, "Sign-in with GitHub is not configured (github.client_id, github.client_secret).")
    state = secrets.token_urlsafe(32)
    session["oauth_state"], session["oauth_started"] = state, time.time()
    session["oauth_next"] = safe_next(request.args.get("next"))
    return redirect(authorize_url(current_app.extensions["tfbot"].config.github, redirect_uri(), state), 302)


@bp.get(CALLBACK_PATH)
def callback():  # type: ignore[no-untyped-def]
    if not sign_in_offered():
        abort(404, "Sign-in with GitHub is not configured (github.client_id, github.client_secret).")
    # Popped whatever happens next: a state serves one callback only.
    expected, started = session.pop("oauth_state", None), session.pop("oauth_started", 0.0)
    target = safe_next(session.pop("oauth_next", None))
    sent = request.args.get("state", "")
    if not expected or not hmac.compare_digest(str(expected), sent) \
            or time.time() - float(started) > STATE_SECONDS:
        log.warning("refused a GitHub sign-in callback without this browser's state, from %s", request.remote_addr)
        abort(403, "This sign-in did not start in this browser, was already used, or took longer than ten "
                   "minutes. Sign in with GitHub again.")
    if request.args.get("error"):
        flash("Sign-in with GitHub was cancelled: "
              + str(request.args.get("error_description") or request.args["error"])[:200], "warn")
        return redirect(target, 303)
    code = request.args.get("code", "")
    if not code:
        abort(400, "GitHub sent no sign-in code back. Sign in with GitHub again.")
    try:
        login = current_app.extensions["tfbot"].github_oauth.login_for_code(code[:200], redirect_uri())
    except SignInError as exc:
        abort(502, str(exc))
    session.clear()  # a fresh session: new CSRF token, nothing carried over from before sign-in
    session.permanent = True
    session["github"] = login
    log.info("%s signed in to the lock page with GitHub from %s", login, request.remote_addr)
    return redirect(target, 303)


def shown_roles() -> ShownRoles:
    """This process's roles kept for drawing the page (bot/web/repo_roles.py)."""
    kept: ShownRoles = current_app.extensions["tfbot_shown_roles"]
    return kept


def init_app(app) -> None:  # type: ignore[no-untyped-def]
    """Keep roles for the page; make `github_user()` and `github_sign_in()` available to every template."""
    app.extensions["tfbot_shown_roles"] = ShownRoles()
    app.jinja_env.globals.update(github_user=current_github_user, github_sign_in=sign_in_offered)
