"""Sign in with GitHub, end to end: `tfbot serve` with workers and real Terraform, two real PRs holding locks, the
fake GitHub serving the OAuth flow and the permission API, and people acting over HTTP as a browser would.

A maintainer signs in with GitHub and unlocks: the lock goes, the audit trail names them and their reason, and the
PR is told. A writer is refused with 403, and so is a maintainer demoted on GitHub after signing in; nothing
changes for either."""
from __future__ import annotations

import json
import re

import pytest
import requests

from bot.state import audit
from tests.support.scenario import REPO

pytestmark = pytest.mark.e2e


def github_session(base: str, fake, login: str) -> requests.Session:
    """A browser signed in to tfbot with GitHub as `login`: tfbot -> GitHub's authorize page -> tfbot's callback."""
    fake.authorize_as(login)
    session = requests.Session()
    landed = session.get(f"{base}/auth/github", params={"next": "/locks"}, timeout=30)
    assert landed.status_code == 200 and landed.url == f"{base}/locks", (landed.status_code, landed.url)
    assert f"Signed in as <strong>{login}</strong>" in landed.text
    return session


def unlock_buttons(html: str) -> list[str]:
    return sorted(re.findall(r'aria-label="Unlock (\S+) held by', html))


def unlock_form(session: requests.Session, base: str, lock, reason: str) -> dict[str, str]:
    """What the page's unlock form posts for `lock` (with or without a button on the page for it)."""
    html = session.get(f"{base}/locks", timeout=30).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)[1]
    ref = {"repo": lock.repo, "dir": lock.dir, "workspace": lock.workspace, "token": lock.token}
    return {"csrf_token": csrf, "next": "/locks", "lock": json.dumps(ref), "reason": reason}


def unlocks(sc) -> list:
    return [e for e in audit.entries(sc.redis()) if e.action == "unlock"]


def test_a_github_maintainer_unlocks_and_a_writer_is_refused(make_scenario):
    sc = make_scenario()
    sc.settings["github"].update(web_url=sc.fake.web_url, client_id=sc.fake.client_id,
                                 client_secret=sc.fake.client_secret)
    sc.settings["server"]["unlock_permission"] = "maintain"
    sc.init_main({"network/main.tf": sc.config_for("network", {"vpc": "1"}),
                  "dns/main.tf": sc.config_for("dns", {"zone": "1"})})
    for user, role in (("mo", "maintain"), ("walt", "write"), ("max", "maintain")):
        sc.fake.set_permission(REPO, user, role)
    sc.start()
    base = sc.server.url
    a = sc.open_pr("a", {"network/main.tf": sc.config_for("network", {"vpc": "1", "subnet": "2"})})
    b = sc.open_pr("b", {"dns/main.tf": sc.config_for("dns", {"zone": "1", "record": "2"})}, author="bob")
    sc.wait_comment(a, lambda body: "Plan: 2 to add" in body, what="the plan")
    sc.wait_comment(b, lambda body: "Plan: 2 to add" in body, what="the plan")
    sc.wait_idle()
    network, dns = sc.lock("network"), sc.lock("dns")
    assert "Sign in with GitHub" in requests.get(f"{base}/locks", timeout=30).text

    # A writer: no button, and a hand-made POST is refused with 403; nothing changes.
    walt = github_session(base, sc.fake, "walt")
    assert unlock_buttons(walt.get(f"{base}/locks", timeout=30).text) == []
    refused = walt.post(f"{base}/locks/unlock", data=unlock_form(walt, base, network, "I want it"),
                        allow_redirects=False, timeout=30)
    assert refused.status_code == 403 and "GitHub gives walt the write role" in refused.text
    assert sc.lock("network") == network and unlocks(sc) == []

    # A maintainer demoted after the page drew their buttons: refused at the moment of the unlock.
    max_ = github_session(base, sc.fake, "max")
    assert unlock_buttons(max_.get(f"{base}/locks", timeout=30).text) == ["dns", "network"]
    form = unlock_form(max_, base, network, "cleaning up")
    sc.fake.set_permission(REPO, "max", "triage")
    demoted = max_.post(f"{base}/locks/unlock", data=form, allow_redirects=False, timeout=30)
    assert demoted.status_code == 403 and "GitHub gives max the triage role" in demoted.text
    assert sc.lock("network") == network and unlocks(sc) == []

    # A maintainer: unlocked, audited with their reason, and the PR told.
    mo = github_session(base, sc.fake, "mo")
    asked_before = len([r for r in sc.fake.requests if r.path.endswith("/collaborators/mo/permission")])
    done = mo.post(f"{base}/locks/unlock", data=unlock_form(mo, base, network, "superseded by the VPC rework"),
                   timeout=30)
    assert done.status_code == 200 and "Unlocked network in acme/infra" in done.text
    # The page drew its buttons from the roles listed at sign-in; the unlock asked GitHub once, as the App.
    assert len([r for r in sc.fake.requests if r.path.endswith("/collaborators/mo/permission")]) == asked_before + 1
    assert sc.lock("network") is None and sc.lock("dns") == dns
    [entry] = unlocks(sc)
    assert (entry.user, entry.pull, entry.project) == ("mo", a, "network")
    assert entry.detail == "superseded by the VPC rework — unlocked from the lock page, signed in with GitHub"
    sc.wait_comment(a, lambda body: "@mo unlocked `network` from the lock page, signed in with GitHub. "
                                    "Reason: `superseded by the VPC rework`." in body, what="the unlock note")
    assert not [body for body in sc.bot_comments(b) if "unlocked" in body]
