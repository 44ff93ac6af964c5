"""The lock page in a real browser (Debian's Chromium, headless, through Playwright) against a running tfbot with
three locks from three real PRs: rows, escaping, sign-in, unlock, auto-refresh, and screenshots in tests/output/;
and Sign in with GitHub, with unlock buttons only where GitHub gives the user enough of a role."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from bot.state.locks import LockStore
from bot.models import Project
from tests.support.browser import ADMIN, ADMIN_HASH, ADMIN_PASSWORD, OUTPUT_DIR, chromium  # noqa: F401
from tests.support.scenario import REPO

pytestmark = pytest.mark.e2e
XSS = "<script>alert(1)</script>"
PROJECTS = ("network", "dns", "storage")


@pytest.fixture
def sc(make_scenario):
    scenario = make_scenario(workers=3)
    scenario.settings["server"]["admins"] = [{"name": ADMIN, "password_hash": ADMIN_HASH}]
    scenario.init_main({f"{p}/main.tf": scenario.config_for(p, {"base": "1"}) for p in PROJECTS})
    scenario.start()
    return scenario


def open_three_prs(sc) -> dict[str, int]:
    prs = {
        "network": sc.open_pr("grow", {"network/main.tf": sc.config_for("network", {"base": "1", "vpc": "2"})},
                              title=XSS),
        "dns": sc.open_pr("zone", {"dns/main.tf": sc.config_for("dns", {"base": "1", "zone": "z"})},
                          author="bob", title="Move the zone to the new account"),
        "storage": sc.open_pr("bucket", {"storage/main.tf": sc.config_for("storage", {"base": "1", "b": "x"})},
                              author="carol", title="Add a logs bucket"),
    }
    for pr in prs.values():
        sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b, what="a plan")
    sc.wait_idle()
    return prs


def watched_page(chromium):  # noqa: F811
    """A desktop-sized page, and what it says besides its content: the dialogs it opened, the errors in its console
    (a CSP violation shows there). Screenshots go to OUTPUT_DIR."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    page = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
    dialogs: list[str] = []
    problems: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    return page, dialogs, problems


def test_lock_page_in_a_browser(sc, chromium):  # noqa: F811
    prs = open_three_prs(sc)
    page, dialogs, problems = watched_page(chromium)

    page.goto(f"{sc.server.url}/locks")
    rows = page.locator("tbody tr")
    assert rows.count() == 3
    assert sorted(rows.nth(i).get_attribute("data-dir") for i in range(3)) == sorted(PROJECTS)
    network = page.locator('tr[data-dir="network"]')
    assert network.locator(".title").inner_text() == XSS  # shown as text, never run
    assert network.locator(".badge").inner_text() == "planned"
    assert "Plan: 2 to add, 0 to change, 0 to destroy." in network.inner_text()
    assert page.locator('tr[data-dir="dns"] .sub').nth(1).inner_text() == "by bob"
    assert page.locator("button.unlock").count() == 0  # read-only until an admin signs in

    page.locator("a", has_text="Sign in").click()
    page.fill('input[name="name"]', ADMIN)
    page.fill('input[name="password"]', ADMIN_PASSWORD)
    page.locator('button[type="submit"]', has_text="Sign in").click()
    page.wait_for_url("**/locks")
    assert f"Signed in as {ADMIN}" in page.locator(".who").inner_text()
    page.screenshot(path=str(OUTPUT_DIR / "locks.png"), full_page=True)

    unlock = page.locator('button[aria-label^="Unlock dns "]')
    unlock.click()  # the first click only arms the button
    assert unlock.inner_text() == "Confirm unlock" and rows.count() == 3
    with page.expect_navigation():
        unlock.click()
    assert "Unlocked dns in acme/infra" in page.locator(".flash").inner_text()
    assert sorted(rows.nth(i).get_attribute("data-dir") for i in range(rows.count())) == ["network", "storage"]
    assert LockStore(sc.redis()).get(Project(repo=REPO, name="dns", dir="dns")) is None
    sc.wait_comment(prs["dns"], lambda b: f"@{ADMIN} unlocked `dns` from the lock page" in b, what="the unlock note")
    page.screenshot(path=str(OUTPUT_DIR / "locks-after-unlock.png"), full_page=True)

    # A change elsewhere shows up without reloading: closing a PR releases its lock and the list follows.
    page.evaluate("window.__sameDocument = true")
    sc.close(prs["storage"])
    expect(rows).to_have_count(1, timeout=45_000)  # polled by Playwright: the page's CSP forbids eval in it
    assert page.evaluate("window.__sameDocument") is True  # swapped in place, not reloaded

    page.locator('tr[data-dir="network"] a.log').click()
    page.wait_for_selector("pre.output")
    assert "terraform" in page.locator("pre.output").inner_text()
    page.screenshot(path=str(OUTPUT_DIR / "run.png"), full_page=True)

    phone = chromium.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    small = phone.new_page()
    small.goto(f"{sc.server.url}/locks")
    assert small.locator("tbody tr").count() == 1
    width = small.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px wide)"
    small.screenshot(path=str(OUTPUT_DIR / "locks-phone.png"), full_page=True)
    phone.close()
    page.context.close()
    assert dialogs == [], f"a dialog opened: {dialogs}"
    assert problems == [], f"errors in the browser console (a CSP violation shows here): {problems}"


def test_sign_in_with_github_in_a_browser(make_scenario, chromium, tmp_path):  # noqa: F811
    """"Sign in with GitHub" through the fake GitHub's authorize page; then unlock buttons only on the locks of the
    repository where GitHub gives the user maintain, none on another repository's lock. Screenshots in tmp_path."""
    from tests.support.browser import seed_lock

    sc = make_scenario()
    sc.settings["github"].update(web_url=sc.fake.web_url, client_id=sc.fake.client_id,
                                 client_secret=sc.fake.client_secret)
    sc.init_main({f"{p}/main.tf": sc.config_for(p, {"base": "1"}) for p in ("network", "dns")})
    sc.fake.add_repo("acme/billing", "file:///nowhere", installation_id=99)
    sc.fake.set_permission(REPO, "mo", "maintain")
    sc.fake.set_permission("acme/billing", "mo", "write")
    sc.start()
    network = sc.open_pr("grow", {"network/main.tf": sc.config_for("network", {"base": "1", "vpc": "2"})},
                         title="Grow the network")
    dns = sc.open_pr("zone", {"dns/main.tf": sc.config_for("dns", {"base": "1", "zone": "z"})}, author="bob",
                     title="Move the zone")
    for pr in (network, dns):
        sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b, what="a plan")
    sc.wait_idle()
    seed_lock(sc.redis(), "acme/billing", "invoices", pull=7, user="carol", title="Bill by the hour")

    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{sc.server.url}/locks")
    github = page.locator("a.button.github")
    assert github.inner_text() == "Sign in with GitHub"
    assert page.locator("button.unlock").count() == 0
    page.screenshot(path=str(tmp_path / "github-sign-in.png"), full_page=True)

    sc.fake.authorize_as("mo")
    github.click()  # to GitHub's authorize page, which sends the browser straight back signed in
    page.wait_for_url(f"{sc.server.url}/locks")
    assert "Signed in as mo (GitHub)" in page.locator(".who").inner_text()
    rows = page.locator("tbody tr")
    assert rows.count() == 3
    with_button = sorted(rows.nth(i).get_attribute("data-repo") + " " + rows.nth(i).get_attribute("data-dir")
                         for i in range(3) if rows.nth(i).locator("button.unlock").count())
    assert with_button == [f"{REPO} dns", f"{REPO} network"]  # not acme/billing, where mo may only write
    page.screenshot(path=str(tmp_path / "github-signed-in.png"), full_page=True)

    page.fill('input[name="reason"]', "superseded by the zone move")
    unlock = page.locator('button[aria-label^="Unlock network "]')
    unlock.click()  # arms
    with page.expect_navigation():
        unlock.click()
    assert "Unlocked network in acme/infra" in page.locator(".flash").inner_text()
    sc.wait_comment(network, lambda b: "@mo unlocked `network` from the lock page, signed in with GitHub. "
                                       "Reason: `superseded by the zone move`." in b, what="the unlock note")
    page.screenshot(path=str(tmp_path / "github-after-unlock.png"), full_page=True)
    context.close()

    phone = chromium.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    small = phone.new_page()
    small.goto(f"{sc.server.url}/locks")
    assert small.locator("a.button.github").is_visible()
    width = small.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px wide)"
    small.screenshot(path=str(tmp_path / "github-sign-in-phone.png"), full_page=True)
    phone.close()
    assert problems == [], f"errors in the browser console (a CSP violation shows here): {problems}"


def test_drift_page_in_a_browser(make_scenario, chromium):  # noqa: F811
    """`/drift` with one project in each state, reached from the lock page's top bar: rows, a hostile project name
    shown as text, no console error, no sideways scroll on a phone; screenshots drift.png and drift-phone.png."""
    import time

    from bot.state.drift_checks import DriftCheck, DriftChecks, DriftState

    sc = make_scenario()
    sc.init_main({"network/main.tf": sc.config_for("network", {"base": "1"})})
    sc.start()
    now = time.time()
    checks = DriftChecks(sc.redis())
    checks.record(DriftCheck(
        repo=REPO, project="network", dir="network", workspace="default", state=DriftState.DRIFTED,
        checked_at=now - 420, sha="4f1c2e9a7b3d5f6e8a9b0c1d2e3f4a5b6c7d8e9f",
        summary="Plan: 1 to add, 2 to change, 1 to destroy.", run_id="drift-network-1",
        resources=("update terraform_data.vpc", "update terraform_data.subnet_a", "create terraform_data.route",
                   "delete terraform_data.legacy_peering"),
        issue=41, issue_url=f"{sc.fake.web_url}/{REPO}/issues/41"))
    checks.record(DriftCheck(repo=REPO, project="dns", dir="dns", workspace="prod", state=DriftState.CLEAN,
                             checked_at=now - 3700, summary="No changes. Your infrastructure matches the "
                             "configuration.", run_id="drift-dns-1"))
    checks.record(DriftCheck(repo=REPO, project="storage", dir="storage", workspace="default",
                             state=DriftState.SKIPPED, checked_at=now - 90,
                             detail="PR #17 holds the lock of storage; checked again at the next slot"))
    checks.record(DriftCheck(repo="acme/web", project=XSS, dir="app", workspace="default", state=DriftState.FAILED,
                             checked_at=now - 30, detail="terraform init failed: the backend's bucket is gone"))
    page, dialogs, problems = watched_page(chromium)

    page.goto(f"{sc.server.url}/locks")
    page.locator("nav.pages a", has_text="Drift").click()
    page.wait_for_url(f"{sc.server.url}/drift")
    expect(page.locator("nav.pages a[aria-current=page]")).to_have_text("Drift")
    rows = page.locator("tbody tr")
    assert rows.count() == 4
    states = {rows.nth(i).get_attribute("data-dir"): rows.nth(i).locator(".badge").inner_text() for i in range(4)}
    assert states == {"network": "drifted", "dns": "clean", "storage": "skipped", "app": "failed"}
    network = page.locator('tr[data-dir="network"]')
    assert network.locator(".resources li").count() == 4
    assert network.locator("a.issue").get_attribute("href") == f"{sc.fake.web_url}/{REPO}/issues/41"
    assert page.locator('tr[data-dir="app"] .project').inner_text() == XSS  # text, never run
    assert [c.inner_text() for c in page.locator(".chips li").all()] == ["1 drifted", "1 failed", "1 skipped",
                                                                          "1 clean"]
    page.screenshot(path=str(OUTPUT_DIR / "drift.png"), full_page=True)
    page.context.close()

    phone = chromium.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    small = phone.new_page()
    small.goto(f"{sc.server.url}/drift")
    assert small.locator("tbody tr").count() == 4
    width = small.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px wide)"
    small.screenshot(path=str(OUTPUT_DIR / "drift-phone.png"), full_page=True)
    phone.close()
    assert dialogs == []
    assert problems == [], f"errors in the browser console (a CSP violation shows here): {problems}"
