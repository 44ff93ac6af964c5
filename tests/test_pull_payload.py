"""A PR read from its webhook payload (`PullInfo.from_payload`) is the PR `GET /pulls/{n}` answers, so a handler
need not ask; a payload that lacks a field (the `closed` event reconciliation builds) says so with None."""
from __future__ import annotations

from bot.adapters.github import PullInfo
from bot.ops.reconcile import closed_event
from tests.support import webhook_payloads as wp
from tests.support.services_fixtures import INSTALLATION, REPO


def event_pull(fake, number: int, action: str = "opened") -> PullInfo | None:
    payload = wp.pull_request_event(action, fake.repo_payload(REPO), fake.pull_payload(REPO, number), INSTALLATION,
                                    "alice")
    return PullInfo.from_payload(payload["pull_request"], REPO)


def test_the_payload_says_what_github_answers(fake_github, worker_services):
    gh = worker_services.github.repo(INSTALLATION, REPO)
    fake_github.add_pull(REPO, 1, head_ref="grow", user="alice", head_sha="a" * 40, base_sha="b" * 40,
                         title="Grow", draft=True)
    fake_github.add_pull(REPO, 2, head_ref="fork-grow", user="mallory", head_sha="c" * 40, base_sha="b" * 40,
                         fork=True)
    fake_github.add_pull(REPO, 3, head_ref="done", user="alice", head_sha="d" * 40, base_sha="b" * 40)
    fake_github.update_pull(REPO, 3, state="closed", merged=True, merge_commit_sha="e" * 40, merged_by="mo")
    for number in (1, 2, 3):
        asked = gh.pull(number)
        assert event_pull(fake_github, number, "closed" if number == 3 else "opened") == asked
    assert gh.pull(1).draft and gh.pull(2).is_fork and gh.pull(3).merged_by == "mo"


def test_a_payload_tfbot_built_itself_is_not_enough(fake_github, worker_services):
    fake_github.add_pull(REPO, 1, head_ref="grow", user="alice", head_sha="a" * 40, base_sha="b" * 40)
    thin = closed_event(REPO, INSTALLATION, worker_services.github.repo(INSTALLATION, REPO).pull(1))
    assert PullInfo.from_payload(thin["pull_request"], REPO) is None
    assert PullInfo.from_payload({"number": 1}, REPO) is None
