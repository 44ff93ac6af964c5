"""Hostile input end to end: replays, permission changes, fork policy, injection, secrets, limits."""
from __future__ import annotations

import time

import uuid

import pytest
import requests

from bot.state import audit
from bot.state.locks import LockStore
from bot.models import Project
from tests.support import webhook_payloads as wp
from tests.support.scenario import INSTALLATION, REPO, SECRET

pytestmark = pytest.mark.e2e


def net(sc, **resources: str) -> dict[str, str]:
    return {"network/main.tf": sc.config_for("network", {"vpc": "v", **resources})}


@pytest.fixture
def sc(make_scenario):
    scenario = make_scenario()
    scenario.init_main(net(scenario))
    for user, role in (("alice", "write"), ("rita", "read")):
        scenario.fake.set_permission(REPO, user, role)
    return scenario


def applies(sc) -> list[audit.AuditEntry]:
    return [e for e in audit.entries(sc.redis(), REPO) if e.action == "apply"]


def test_a_replayed_apply_comment_does_nothing(sc):
    sc.start()
    pr = sc.open_pr("grow", net(sc, subnet="a"))
    sc.wait_comment(pr, lambda b: "Plan:" in b)
    comment = sc.comment(pr, "alice", "apply")
    sc.wait_comment(pr, lambda b: "Apply complete!" in b)
    # The captured, validly signed body, sent again under a new delivery id (and under the old one).
    payload = wp.issue_comment_event("created", sc.fake.repo_payload(REPO), pr, comment, INSTALLATION, "alice",
                                     issue=sc.fake.issue_payload(REPO, pr))
    for delivery in (str(uuid.uuid4()), str(uuid.uuid4())):
        assert sc.server.post_event("issue_comment", payload, SECRET, delivery=delivery).status_code == 202
    sc.wait_idle()
    assert len(applies(sc)) == 1
    assert sum(1 for b in sc.bot_comments(pr) if "Apply complete!" in b) == 1
    assert "a replay under a new delivery id" in sc.logs()


def test_a_replayed_merge_does_not_apply_twice(sc):
    sc.start()
    pr = sc.open_pr("grow", net(sc, subnet="a"))
    sc.wait_comment(pr, lambda b: "Plan:" in b)
    sc.merge(pr)
    sc.wait_comment(pr, lambda b: "Apply complete!" in b)
    closed = wp.pull_request_event("closed", sc.fake.repo_payload(REPO), sc.fake.pull_payload(REPO, pr), INSTALLATION,
                                   "alice")
    assert sc.server.post_event("pull_request", closed, SECRET).status_code == 202
    sc.wait_idle()
    assert len(applies(sc)) == 1


def test_permission_is_asked_on_every_apply(sc):
    sc.start()
    pr = sc.open_pr("grow", net(sc, subnet="a"))
    sc.wait_comment(pr, lambda b: "Plan:" in b)
    sc.fake.set_permission(REPO, "alice", None)  # removed from the team after the plan
    sc.comment(pr, "alice", "apply")
    assert "`none` permission" in sc.wait_comment(pr, lambda b: "apply refused" in b)
    sc.comment(pr, "stranger", "unlock")  # never a collaborator: GitHub answers 404
    assert "@stranger" in sc.wait_comment(pr, lambda b: "unlock refused" in b)
    assert sc.state_resources("network") == {}
    assert LockStore(sc.redis()).get(Project(repo=REPO, name="network", dir="network")).pull == pr


def test_fork_plans_only_when_allowed_and_asked_by_a_writer(make_scenario):
    sc = make_scenario(repo_settings={"allow_fork_prs": True})
    sc.init_main(net(sc))
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()
    pr = sc.open_pr("fork", net(sc, subnet="evil"), author="mallory", fork=True)
    assert "write access" in sc.wait_comment(pr, lambda b: "fork" in b)
    sc.comment(pr, "mallory", "plan")
    assert "write access" in sc.wait_comment(pr, lambda b: "@mallory" in b)
    assert not any("Plan:" in b for b in sc.bot_comments(pr))
    time.sleep(1.1)  # GitHub's clock has seconds: a comment in the push's second does not approve that push
    sc.comment(pr, "alice", "plan")
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)


def test_comment_flags_never_leave_the_checkout(sc):
    sc.start()
    pr = sc.open_pr("grow", net(sc, subnet="a"))
    sc.wait_comment(pr, lambda b: "Plan:" in b)
    for body in ("tfbot plan -d ../../etc", "tfbot plan -d /etc", "tfbot plan -w ../x", "tfbot apply $(id)",
                 "tfbot plan -d `id`"):
        sc.comment(pr, "alice", body)
    sc.wait_idle()
    replies = [b for b in sc.bot_comments(pr) if "could not run that" in b]
    assert len(replies) == 4
    # `id` in backticks is a directory name git allows: taken literally (never run), matched, and quoted back inert.
    [literal] = [b for b in sc.bot_comments(pr) if "nothing to plan" in b]
    assert "`-d '?id?'`" in literal
    assert sum(1 for b in sc.bot_comments(pr) if "Plan:" in b) == 1


def test_too_many_projects_are_refused_with_a_comment(sc):
    sc.start()
    files = {f"envs/e{i:04d}/main.tf": 'resource "terraform_data" "x" {}\n' for i in range(2000)}
    pr = sc.open_pr("huge", files)
    body = sc.wait_comment(pr, lambda b: "max_projects_per_pr" in b)
    assert "2000 Terraform projects" in body
    assert sc.wait_status(sc.head(pr), "tfbot/plan")["state"] == "failure"
    sc.wait_idle()
    assert LockStore(sc.redis()).list() == []


def test_secrets_never_reach_comments_logs_or_records(make_scenario, monkeypatch, tmp_path):
    db_password = "correct-horse-battery-staple-42"
    monkeypatch.setenv("TF_VAR_db_password", db_password)
    monkeypatch.setenv("TF_VAR_api_key", "sensitive-api-key-value-77")
    sc = make_scenario(repo_settings={"env_passthrough": ["TF_VAR_db_password", "TF_VAR_api_key"]},
                       extra_settings={"terraform": {"timeout": 300, "mask_env": ["TF_VAR_db_password"]}})
    extra = (
        'variable "db_password" {}\n'
        'variable "api_key" {\n  sensitive = true\n}\n'
        'resource "terraform_data" "db" {\n  input = var.db_password\n}\n'
        'resource "terraform_data" "api" {\n  input = var.api_key\n}\n'
    )
    sc.init_main({"network/main.tf": sc.config_for("network", {"vpc": "v"})})
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()
    pr = sc.open_pr("grow", {"network/main.tf": sc.config_for("network", {"vpc": "v"}, extra=extra)})
    plan = sc.wait_comment(pr, lambda b: "Plan:" in b)
    assert "(sensitive value)" in plan  # Terraform's own redaction stays
    assert "***" in plan  # the value of a mask_env variable is masked
    sc.comment(pr, "alice", "apply")
    sc.wait_comment(pr, lambda b: "Apply complete!" in b)
    sc.comment(pr, "alice", "tfbot plan -d nowhere")
    sc.wait_idle()

    secrets = {
        "webhook secret": SECRET,
        "db password": db_password,
        "sensitive variable": "sensitive-api-key-value-77",
        **{f"installation token {i}": t["token"] for i, t in enumerate(sc.fake.issued_tokens())},
        **{f"private key line {i}": line for i, line in enumerate(sc.settings["github"]["private_key"].splitlines())
           if len(line) > 40},
    }
    assert any(k.startswith("installation token") for k in secrets)
    written = {"tfbot log": sc.logs(), "comments": "\n".join(c["body"] for c in sc.fake.comments(REPO, pr)),
               **sc.redis_texts()}
    for path in ("/healthz", "/api/locks", "/locks"):
        written[path] = requests.get(sc.server.url + path, timeout=10).text
    for where, text in written.items():
        for name, value in secrets.items():
            assert value not in text, f"the {name} appears in {where}"
