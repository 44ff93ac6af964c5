"""Admins sign in to the lock page: a login form, a signed session cookie, and a CSRF token on every form.

Admins come from `server.admins` (name + password hash). Without any, nobody can sign in and the page is
read-only. A session names the admin and a fingerprint of their password hash, so removing an admin or
changing their password in the config signs their sessions out.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from functools import lru_cache
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for
from werkzeug.security import check_password_hash, generate_password_hash

from bot.config import AdminConfig
from bot.state import sign_ins

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)


def _admins() -> tuple[AdminConfig, ...]:
    admins: tuple[AdminConfig, ...] = current_app.extensions["tfbot"].config.server.admins
    return admins


def admins_configured() -> bool:
    return bool(_admins())


def _fingerprint(admin: AdminConfig) -> str:
    return hashlib.sha256(admin.password_hash.encode()).hexdigest()[:16]


def current_admin() -> str | None:
    """The signed-in admin's name, or None."""
    name, fingerprint = session.get("admin"), session.get("admin_fp")
    if not name:
        return None
    for admin in _admins():
        if admin.name == name and hmac.compare_digest(_fingerprint(admin), str(fingerprint)):
            return admin.name
    return None


def csrf_token() -> str:
    """This session's CSRF token, made on first use (a template calls it to fill a hidden field)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def csrf_ok() -> bool:
    """Whether the posted form carries this session's CSRF token."""
    expected, sent = session.get("csrf"), request.form.get("csrf_token", "")
    return bool(expected) and hmac.compare_digest(str(expected), sent)


def safe_next(target: str | None, default: str = "/locks") -> str:
    r"""A path on this site to go back to after a form; anything that could lead elsewhere gives `default`.

    Browsers drop tabs and newlines from URLs and read a backslash as a slash, so `/<TAB>/evil.example` and
    `/\evil.example` are `//evil.example`, another site: a target with any of them, with a scheme or a host,
    or not starting with a single slash is refused.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_hex(16))


def check_login(name: str, password: str) -> AdminConfig | None:
    """The admin whose name and password these are, or None; an unknown name costs as much as a wrong password."""
    admin = next((a for a in _admins() if a.name == name), None)
    ok = check_password_hash(admin.password_hash if admin else _dummy_hash(), password)
    return admin if admin and ok else None


@bp.get("/login")
def login_form():  # type: ignore[no-untyped-def]
    if current_admin():
        return redirect(safe_next(request.args.get("next")), 303)
    return render_template("web/login.html", next=safe_next(request.args.get("next")), error=None)


@bp.post("/login")
def login():  # type: ignore[no-untyped-def]
    target = safe_next(request.form.get("next"))
    if not csrf_ok():
        abort(403, "The form expired or did not come from this page: reload it and sign in again.")
    if not admins_configured():
        abort(403, "No admins are configured (server.admins): the lock page is read-only.")
    name = request.form.get("name", "").strip()
    admin = check_login(name, request.form.get("password", ""))
    if admin is None:
        log.warning("failed sign-in to the lock page as %r from %s", name[:64], request.remote_addr)
        return render_template("web/login.html", next=target, error="Wrong name or password."), 401
    session.clear()  # a fresh session: new CSRF token, nothing carried over from before sign-in
    session.permanent = True
    session["admin"], session["admin_fp"] = admin.name, _fingerprint(admin)
    log.info("%s signed in to the lock page from %s", admin.name, request.remote_addr)
    return redirect(target, 303)


@bp.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    if not csrf_ok():
        abort(403, "The form expired or did not come from this page: reload it and try again.")
    if session.get("github_sid"):  # a GitHub sign-in's roles kept for the page go with it
        sign_ins.forget(current_app.extensions["tfbot"].redis, str(session["github_sid"]))
    session.clear()
    return redirect(url_for("locks.page"), 303)


def init_app(app) -> None:  # type: ignore[no-untyped-def]
    """Make `csrf_token()`, `current_admin()` and `admins_configured()` available to every template."""
    app.jinja_env.globals.update(csrf_token=csrf_token, current_admin=current_admin,
                                 admins_configured=admins_configured)
