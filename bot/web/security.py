"""What every response carries (CSP and friends), the session cookie's flags, and the key that signs sessions."""
from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface

from bot.config import Config

log = logging.getLogger(__name__)

# No inline script or style anywhere, so a value that slipped past escaping still cannot run.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}
SECRET_KEY_FILE = "web-secret-key"
SESSION_HOURS = 12


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked Secure whenever this request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def init_app(app: Flask, config: Config) -> None:
    """Set the session key and cookie flags, and add the security headers to every response."""
    from datetime import timedelta

    app.secret_key = secret_key(config)
    app.config.update(
        SESSION_COOKIE_NAME="tfbot_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.server.public_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
    )
    app.session_interface = _SessionInterface()
    app.after_request(_add_headers)


def _add_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "public, max-age=300")
    else:
        # Pages carry a CSRF token and, for admins, who is signed in: never in a shared cache.
        response.headers.setdefault("Cache-Control", "private, no-cache")
    return response


def secret_key(config: Config) -> str:
    """server.secret_key, or a random key kept in data_dir so every process of this host signs alike."""
    if config.server.secret_key:
        return config.server.secret_key
    if config.redis_url and not config.redis_url.startswith("unix://"):  # a socket is on this host
        log.warning("server.secret_key is not set: sessions are signed with a key kept in %s; if several hosts "
                    "serve the page behind one address, set the same server.secret_key (or TFBOT_SECRET_KEY) "
                    "on each", config.data_dir)
    return _key_in(Path(config.data_dir))


def _key_in(data_dir: Path) -> str:
    path = data_dir / SECRET_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = data_dir / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # atomic and never overwrites: two processes starting together agree on one key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()
