"""Clients of tfbot's pages: the Flask app over a real Redis (for page, auth and metrics tests), seeded locks and
runs, a signed-in test client, and headless Chromium from Debian driven by Playwright (for the browser test)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis as redis_lib
from werkzeug.security import generate_password_hash

from bot.state import keys
from bot.config import parse_config
from bot.models import LockInfo, LockState
from bot.adapters.preflight import TerraformCheck
from bot.compose import web_services
from tests.support.tfbot_process import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
OUTPUT_DIR = REPO_ROOT / "tests" / "output"
ADMIN, ADMIN_PASSWORD = "ana", "correct horse battery staple"
# A cheap hash keeps sign-in fast in tests; real configs get scrypt from `tfbot hash-password`.
ADMIN_HASH = generate_password_hash(ADMIN_PASSWORD, method="pbkdf2:sha256:1000")


def web_config(tmp_path: Path, private_key: str, server: dict[str, Any] | None = None, **top: Any):
    """A validated Config for the web app (GitHub settings are never called by the pages)."""
    raw = {
        "github": {"api_url": "https://api.github.com", "app_id": 1, "private_key": private_key,
                   "webhook_secret": "page-tests"},
        "data_dir": str(tmp_path / "data"),
        "server": {"admins": [{"name": ADMIN, "password_hash": ADMIN_HASH}], **(server or {})},
        "repos": [{"name": "acme/*"}],
        **top,
    }
    return parse_config(raw, base_dir=tmp_path)


def make_web_app(conn: redis_lib.Redis, tmp_path: Path, private_key: str, server: dict[str, Any] | None = None,
                 **top: Any):
    """(Flask app, WebServices) as `tfbot serve` builds them, over `conn`."""
    from bot.web.app import create_app

    services = web_services(web_config(tmp_path, private_key, server, **top), conn,
                            TerraformCheck(True, "1.11.4", "/usr/bin/terraform"))
    app = create_app(services)
    app.config["TESTING"] = True
    return app, services


def seed_lock(conn: redis_lib.Redis, repo: str = "acme/infra", dir: str = "network", workspace: str = "default", *,
              pull: int = 1, user: str = "alice", title: str = "Grow the network", age: float = 60.0,
              state: LockState = LockState.PLANNED, summary: str = "Plan: 1 to add, 0 to change, 0 to destroy.",
              run_id: str = "", token: int | None = None, project: str | None = None, pipe: Any = None,
              extra_args: str = "", locked_at: float | None = None) -> LockInfo:
    """Store a lock the way LockStore does (one JSON value plus the index entry), with a chosen age (or `locked_at`). As
    a write outside the lock scripts, it deletes the lock version, so every reader reads all locks again
    (bot/state/locks.py)."""
    lock = LockInfo(repo=repo, dir=dir, workspace=workspace, project=project or dir, pull=pull, user=user,
                    locked_at=time.time() - age if locked_at is None else locked_at,
                    token=token if token is not None else int(conn.incr(keys.fence())),
                    state=state, pull_title=title, pull_url=f"https://github.com/{repo}/pull/{pull}",
                    summary=summary, run_id=run_id, extra_args=extra_args)
    target = pipe if pipe is not None else conn.pipeline()
    target.set(keys.lock(repo, dir, workspace), json.dumps({**lock.__dict__, "state": lock.state.value}))
    target.sadd(keys.lock_index(), keys.lock(repo, dir, workspace))
    target.delete(keys.lock_version())
    if pipe is None:
        target.execute()
    return lock


def seed_run(records: Any, run_id: str, output: str, **meta: Any) -> dict[str, Any]:
    """Save a run log as the runner does."""
    data = {"id": run_id, "kind": "plan", "repo": "acme/infra", "pull": 1, "project": "network", "dir": "network",
            "workspace": "default", "sha": "a" * 40, "user": "alice", "started_at": time.time() - 30,
            "duration": 12.5, "ok": True, "summary": "Plan: 1 to add, 0 to change, 0 to destroy.",
            "command_id": "", **meta}
    records.save_run(run_id, data, output)
    return data


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match[1]


def sign_in(client: Any, name: str = ADMIN, password: str = ADMIN_PASSWORD) -> Any:
    """Sign a Flask test client in through the login form; return the response to the POST."""
    token = csrf_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"csrf_token": token, "name": name, "password": password, "next": "/locks"})


def github_settings(fake: Any, private_key: str, **extra: Any) -> dict[str, Any]:
    """The `github` config section for the fake GitHub, with "Sign in with GitHub" (its web and API on one host)."""
    return {"api_url": fake.base_url, "web_url": fake.web_url, "app_id": fake.app_id, "private_key": private_key,
            "webhook_secret": "page-tests", "app_slug": fake.app_slug, "retries": 0, "write_interval": 0,
            "client_id": fake.client_id, "client_secret": fake.client_secret, **extra}


def github_sign_in(client: Any, fake: Any, login: str | None, next_path: str = "/locks") -> Any:
    """Sign a Flask test client in with GitHub as `login` (None: they cancel on GitHub's page), following the
    redirects a browser would; returns tfbot's answer to the callback."""
    import requests
    from urllib.parse import urlsplit

    fake.authorize_as(login)
    start = client.get("/auth/github", query_string={"next": next_path})
    assert start.status_code == 302, start.get_data(as_text=True)
    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)  # GitHub's authorize page
    assert back.status_code == 302, back.text
    callback = urlsplit(back.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")


# --- headless Chromium ---------------------------------------------------------------------------------------

def ensure_chromium() -> str | None:
    """The path of Debian's chromium, installing it when missing and we are root; None when impossible."""
    import os

    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        if subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}).returncode != 0:
            return None
    return CHROMIUM if Path(CHROMIUM).exists() else None


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium (Debian's, never a downloaded build) through Playwright's sync API."""
    path = ensure_chromium()
    if path is None:
        pytest.skip(f"BROWSER TEST SKIPPED: {CHROMIUM} is missing and could not be installed "
                    "(run `apt-get install chromium` as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
