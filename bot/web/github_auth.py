"""Sign in with GitHub on the lock page: `GET /auth/github` sends the browser to GitHub, `GET /auth/github/callback`
brings it back signed in.

Offered when `github.client_id` and `github.client_secret` are set. The `state` sent to GitHub is random, kept in
the session, single use, at most ten minutes old and compared in constant time: a callback this browser did not
start is refused, so nobody can sign someone else in under their own account.

Only users who reach a repository where the App is installed may sign in: GitHub's list of the App's installations
for the user's own token must not be empty, else the sign-in is refused with 403 and no session is made. GitHub's
token for the user serves for that listing (and the roles listed with it, the page's hint of which unlock buttons
to show) and is then dropped (bot/adapters/github_oauth.py). The session (signed, not encrypted) holds the login
and a random id under which those roles are kept in Redis (bot/state/sign_ins.py). What the user may unlock is
asked of GitHub at the moment of the unlock (bot/web/repo_roles.py).
"""
from __future__ import annotations

import hmac
import logging
import secrets
import time

from flask import Blueprint, abort, current_app, flash, redirect, request, session, url_for

from bot.adapters.github_oauth import NoInstallationAccess, SignInError, authorize_url
from bot.state import sign_ins
from bot.web.auth import safe_next
from bot.web.security import SESSION_HOURS

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


def current_sign_in_id() -> str | None:
    """The random id of this session's GitHub sign-in (what its kept roles are filed under), or None."""
    sid = session.get("github_sid")
    return str(sid) if sid and current_github_user() else None


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
    svc = current_app.extensions["tfbot"]
    try:
        signed = svc.github_oauth.sign_in(code[:200], redirect_uri())
    except NoInstallationAccess as exc:
        abort(403, str(exc))
    except SignInError as exc:
        abort(502, str(exc))
    session.clear()  # a fresh session: new CSRF token, nothing carried over from before sign-in
    session.permanent = True
    session["github"] = signed.login
    session["github_sid"] = sid = secrets.token_urlsafe(18)
    sign_ins.keep(svc.redis, sid, signed.roles, SESSION_HOURS * 3600)
    log.info("%s signed in to the lock page with GitHub from %s (%s)", signed.login, request.remote_addr,
             "roles of %d repositories listed" % len(signed.roles) if signed.roles is not None else "roles unknown")
    return redirect(target, 303)


def init_app(app) -> None:  # type: ignore[no-untyped-def]
    """Make `github_user()` and `github_sign_in()` available to every template."""
    app.jinja_env.globals.update(github_user=current_github_user, github_sign_in=sign_in_offered)
