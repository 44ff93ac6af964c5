"""The lifecycle off the straight path, one handler or executor call at a time (issue: the promise holds off the
happy path). Real Redis, real git, the fake GitHub; Terraform is faked only where the run itself is not the point.

Each test is a kind of fault tfbot once had: a fork head approved with the arrival time of an earlier push of the
same commit; a deferred job that gave up marking its PR's running apply as failed; an apply stopped before its
`apply` step leaving the lock `applying` for good; a retargeted PR handed a lock it then held for good.
"""
from __future__ import annotations

import pytest

from bot.config import parse_config
from bot.intake.webhooks import Delivery
from bot.lifecycle.handlers.comments import on_comment
from bot.lifecycle.handlers.pull_requests import FORK_APPROVED, autoplan
from bot.services import WorkerServices
from tests.support import webhook_payloads as wp
from tests.support.services_fixtures import INSTALLATION, REPO

pytestmark = pytest.mark.redis


# --- a fork PR: only the head a writer saw, as it stood when they commented ------------------------------------


@pytest.fixture
def fork_services(fake_github, app_keys, redis_conn, tmp_path, services_remote) -> WorkerServices:
    config = parse_config({
        "github": {"api_url": fake_github.base_url, "app_id": fake_github.app_id, "private_key": app_keys[0].decode(),
                   "webhook_secret": "s", "retries": 0, "write_interval": 0},
        "data_dir": str(tmp_path),
        "repos": [{"name": "acme/*", "allow_fork_prs": True, "projects": [{"dir": "network"}]}],
    }, base_dir=tmp_path)
    fake_github.add_repo(REPO, services_remote.clone_url, installation_id=INSTALLATION)
    fake_github.set_permission(REPO, "mo", "write")
    return WorkerServices(config, redis_conn)


def _push(svc, fake, remote, number: int, sha: str, at: str) -> None:
    """Mallory force-pushes `sha` to the fork PR; GitHub says it arrived at `at`; tfbot handles the event."""
    remote.create_pull_ref(number, sha)
    fake.update_pull(REPO, number, head_sha=sha)
    event = wp.pull_request_event("synchronize", fake.repo_payload(REPO), fake.pull_payload(REPO, number),
                                  INSTALLATION, "mallory", before="0" * 40)
    event["pull_request"]["updated_at"] = at
    autoplan(Delivery(f"sync-{at}", "pull_request", event), svc)


def _plan_comment(svc, fake, number: int, at: str, delivery: str = "c1") -> None:
    comment = fake.add_comment(REPO, number, "mo", "tfbot plan")
    event = wp.issue_comment_event("created", fake.repo_payload(REPO), number,
                                   {"body": "tfbot plan", "id": comment["id"], "created_at": at}, INSTALLATION, "mo")
    on_comment(Delivery(delivery, "issue_comment", event), svc)


def test_a_fork_head_pushed_again_after_the_comment_is_not_approved(fork_services, fake_github, services_remote):
    svc, fake, remote = fork_services, fake_github, services_remote
    evil = remote.commit("f", {"network/main.tf": "# evil\n"}, "evil", parent_branch="main")
    good = remote.commit("g", {"network/main.tf": "# benign\n"}, "benign", parent_branch="main")
    remote.create_pull_ref(7, evil)
    fake.add_pull(REPO, 7, head_ref="f", user="mallory", head_sha=evil, fork=True)
    _push(svc, fake, remote, 7, evil, "2030-01-01T10:00:00Z")
    _push(svc, fake, remote, 7, good, "2030-01-01T10:05:00Z")  # the writer reviews this one
    # The evil head comes back after the comment; its push event is still queued behind the comment's job.
    remote.create_pull_ref(7, evil)
    fake.update_pull(REPO, 7, head_sha=evil)
    _plan_comment(svc, fake, 7, "2030-01-01T10:30:00Z")
    assert svc.records.pull_field(REPO, 7, FORK_APPROVED) != evil
    assert not [j for j in svc.runs_queue.jobs if j.func_name == "bot.jobs.run_project"]
    assert any("was pushed after your comment" in c["body"] for c in fake.comments(REPO, 7))


def test_a_fork_head_seen_before_the_comment_is_approved(fork_services, fake_github, services_remote):
    svc, fake, remote = fork_services, fake_github, services_remote
    good = remote.commit("g", {"network/main.tf": "# benign\n"}, "benign", parent_branch="main")
    remote.create_pull_ref(7, good)
    fake.add_pull(REPO, 7, head_ref="g", user="mallory", head_sha=good, fork=True)
    _push(svc, fake, remote, 7, good, "2030-01-01T10:05:00Z")
    _plan_comment(svc, fake, 7, "2030-01-01T10:30:00Z")
    assert svc.records.pull_field(REPO, 7, FORK_APPROVED) == good
    assert [j.func_name for j in svc.runs_queue.jobs] == ["bot.jobs.run_project"]
