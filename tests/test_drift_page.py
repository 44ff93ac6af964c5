"""`/drift`, `/api/drift` and the `tfbot_drift_projects` metric over real Redis, with checks written as a worker
writes them (`DriftChecks.record`)."""
from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.state.drift_checks import DriftCheck, DriftChecks, DriftState
from bot.web.drift_view import SHOWN_RESOURCES
from tests.support.browser import make_web_app

NOW = time.time()
SHA = "0123456789abcdef0123456789abcdef01234567"


def seed_checks(conn) -> None:
    checks = DriftChecks(conn)
    checks.record(DriftCheck(repo="acme/infra", project="network", dir="network", workspace="default",
                             state=DriftState.DRIFTED, checked_at=NOW - 300, sha=SHA,
                             summary="Plan: 0 to add, 1 to change, 1 to destroy.",
                             resources=("update terraform_data.vpc", "delete terraform_data.old"), run_id="run-7",
                             issue=12, issue_url="https://github.com/acme/infra/issues/12"))
    checks.record(DriftCheck(repo="acme/infra", project="dns", dir="dns", workspace="prod", state=DriftState.CLEAN,
                             checked_at=NOW - 7200, sha=SHA, summary="No changes.", run_id="run-8"))
    checks.record(DriftCheck(repo="acme/infra", project="storage", dir="storage", workspace="default",
                             state=DriftState.SKIPPED, checked_at=NOW - 60,
                             detail="PR #4 holds the lock of storage; checked again at the next slot"))
    checks.record(DriftCheck(repo="acme/web", project="<script>alert(1)</script>", dir="app", workspace="default",
                             state=DriftState.FAILED, checked_at=NOW - 30, detail="terraform init failed",
                             run_url="javascript:alert(1)", issue_url="javascript:alert(2)"))


@pytest.fixture
def web(redis_conn, tmp_path, app_private_key):
    return make_web_app(redis_conn, tmp_path, app_private_key, server={"public_url": "https://tfbot.example.com"})


def test_the_api_lists_every_projects_last_check(web, redis_conn):
    app, _ = web
    seed_checks(redis_conn)
    data = app.test_client().get("/api/drift").get_json()
    assert data["total"] == 4
    assert data["counts"] == {"clean": 1, "drifted": 1, "failed": 1, "skipped": 1}
    by_project = {p["project"]: p for p in data["projects"]}
    assert [p["repo"] for p in data["projects"]] == ["acme/infra"] * 3 + ["acme/web"]
    network = by_project["network"]
    assert network == {
        "repo": "acme/infra", "project": "network", "dir": "network", "workspace": "default", "state": "drifted",
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 300)),
        "checked_at_unix": int(NOW - 300), "sha": SHA, "summary": "Plan: 0 to add, 1 to change, 1 to destroy.",
        "detail": "", "resources": ["update terraform_data.vpc", "delete terraform_data.old"],
        "run_url": "https://tfbot.example.com/runs/run-7", "issue_number": 12,
        "issue_url": "https://github.com/acme/infra/issues/12"}
    assert by_project["storage"]["state"] == "skipped" and "PR #4" in by_project["storage"]["detail"]
    assert by_project["storage"]["run_url"] is None and by_project["storage"]["issue_url"] is None
    hostile = by_project["<script>alert(1)</script>"]
    assert hostile["run_url"] is None and hostile["issue_url"] is None  # never a javascript: link


def test_the_api_with_no_check_yet(web):
    app, _ = web
    data = app.test_client().get("/api/drift").get_json()
    assert data["total"] == 0 and data["projects"] == []
    assert data["counts"] == {"clean": 0, "drifted": 0, "failed": 0, "skipped": 0}


def test_the_page_shows_each_check_and_links_the_locks_page(web, redis_conn):
    app, _ = web
    seed_checks(redis_conn)
    response = app.test_client().get("/drift")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.count('<tr class="') == 4
    assert 'data-dir="network" data-workspace="default" data-state="drifted"' in html
    assert 'href="https://github.com/acme/infra/issues/12"' in html and "Issue #12" in html
    assert 'href="https://tfbot.example.com/runs/run-7"' in html
    assert "terraform_data.vpc" in html and "PR #4 holds the lock of storage" in html
    assert f"https://github.com/acme/infra/commit/{SHA}" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "javascript:" not in html
    assert '<li class="badge warn">1 drifted</li>' in html
    assert 'href="/locks"' in html and 'href="/drift" aria-current="page"' in html
    locks = app.test_client().get("/locks").get_data(as_text=True)
    assert 'href="/drift"' in locks and 'href="/locks" aria-current="page"' in locks


def test_the_page_cuts_a_long_list_of_resources(web, redis_conn):
    app, _ = web
    DriftChecks(redis_conn).record(DriftCheck(
        repo="acme/infra", project="big", dir="big", workspace="default", state=DriftState.DRIFTED,
        resources=tuple(f"update terraform_data.r{i}" for i in range(SHOWN_RESOURCES + 3))))
    html = app.test_client().get("/drift").get_data(as_text=True)
    assert f"terraform_data.r{SHOWN_RESOURCES - 1}<" in html and f"terraform_data.r{SHOWN_RESOURCES}<" not in html
    assert "and 3 more" in html
    data = app.test_client().get("/api/drift").get_json()
    assert len(data["projects"][0]["resources"]) == SHOWN_RESOURCES + 3


def test_the_empty_page_says_whether_drift_is_scheduled(redis_conn, tmp_path, app_private_key):
    off, _ = make_web_app(redis_conn, tmp_path / "off", app_private_key)
    assert "Drift checks are off" in off.test_client().get("/drift").get_data(as_text=True)
    on, _ = make_web_app(redis_conn, tmp_path / "on", app_private_key,
                         repos=[{"name": "acme/*", "drift": {"enabled": True}}])
    assert "scheduled for acme/*" in on.test_client().get("/drift").get_data(as_text=True)


def test_the_metric_counts_projects_by_their_last_check(web, redis_conn):
    app, _ = web

    def drift_gauge() -> dict[str, float]:
        text = app.test_client().get("/metrics").get_data(as_text=True)
        return {s.labels["state"]: s.value for family in text_string_to_metric_families(text)
                for s in family.samples if s.name == "tfbot_drift_projects"}

    assert drift_gauge() == {"clean": 0, "drifted": 0, "failed": 0, "skipped": 0}
    seed_checks(redis_conn)
    assert drift_gauge() == {"clean": 1, "drifted": 1, "failed": 1, "skipped": 1}
    DriftChecks(redis_conn).record(DriftCheck(repo="acme/infra", project="network", dir="network",
                                              workspace="default", state=DriftState.CLEAN))  # drift gone
    assert drift_gauge() == {"clean": 2, "drifted": 0, "failed": 1, "skipped": 1}
