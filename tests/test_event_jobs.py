"""Event jobs survive a GitHub outage: one enqueue helper with the retry policy, the PR told only after the last
try (with advice that fits the event), and no GitHub write before the jobs are queued. Real Redis, a real RQ
worker, the fake GitHub."""
from __future__ import annotations

import pytest
from bot.lifecycle.events_failed import what_failed
from bot.adapters.github import GitHubError
from bot.intake.webhooks import Delivery
from bot.lifecycle.handlers import router
from bot.lifecycle.handover import plan_next
from bot.models import Project
from bot.lifecycle.checks import set_status
from bot.lifecycle.planning import start_command
from bot.queue import EVENT_RETRY_INTERVALS, RETRY_ENV, retry_intervals
from bot.state.records import Command
from bot.lifecycle.runner import _replan
from bot.ops.reconcile import closed_event
from bot.web.unlocking import queue_announcement
from tests.support import webhook_payloads as wp
from tests.support.services_fixtures import INSTALLATION, REPO, real_merge, real_pull, run_jobs

NETWORK = Project(repo=REPO, name="network", dir="network")


# --- the policy ------------------------------------------------------------------------------------------------


def test_the_default_policy_outlasts_an_hour_of_outage():
    assert sum(EVENT_RETRY_INTERVALS) >= 3600
    assert retry_intervals({}) == EVENT_RETRY_INTERVALS


@pytest.mark.parametrize("raw, expected", [("1,1", (1, 1)), ("0", (0,)), (" 5, 10 ", (5, 10)), ("", None),
                                           ("x", None), ("-1", None), ("1,,2", None), ("99999", None)])
def test_the_policy_can_be_chosen_by_environment(raw, expected):
    assert retry_intervals({RETRY_ENV: raw}) == (expected or EVENT_RETRY_INTERVALS)


def test_every_event_job_is_queued_with_the_policy(worker_services):
    svc = worker_services
    svc.jobs.handle_delivery("guid-1", "pull_request", {"action": "opened"})
    plan_next(svc, NETWORK, {"pull": 2, "installation": INSTALLATION}, "#1 was closed")
    cmd = Command(id="c1", kind="plan", repo=REPO, pull=1, head_sha="a" * 40, installation=INSTALLATION,
                  user="alice", total=1)
    _replan(svc, cmd, NETWORK, "the base moved")
    lock = svc.locks.try_acquire(NETWORK, 1, "alice", waiter={"installation": INSTALLATION})
    queue_announcement(svc, svc.locks.get(NETWORK), "admin", "the lock page", None)
    assert lock is not None
    queued = svc.events_queue.jobs
    assert [j.func_name for j in queued] == ["bot.jobs.handle_delivery", "bot.jobs.plan_waiter", "bot.jobs.replan",
                                             "bot.jobs.announce_unlock"]
    for job in queued:
        assert job.retries_left == len(EVENT_RETRY_INTERVALS) and job.retry_intervals == list(EVENT_RETRY_INTERVALS)


# --- retries and the failure comment ---------------------------------------------------------------------------


def merged_with_lock(fake, svc, remote, number: int = 1) -> dict:
    real_pull(fake, remote, number)
    svc.locks.try_acquire(NETWORK, number, "alice", waiter={"installation": INSTALLATION})
    real_merge(fake, remote, number)
    return wp.pull_request_event("closed", fake.repo_payload(REPO), fake.pull_payload(REPO, number), INSTALLATION,
                                 "mo")


def work_events(svc) -> None:
    run_jobs(svc)


def failure_comments(fake, number: int = 1) -> list[str]:
    return [c["body"] for c in fake.comments(REPO, number) if "tfbot could not" in c["body"]]


def test_a_merge_event_that_fails_while_github_is_down_is_retried_and_applied(fake_github, worker_services,
                                                                              services_remote, monkeypatch):
    monkeypatch.setenv(RETRY_ENV, "0,0")  # retried at once, twice
    svc = worker_services
    payload = merged_with_lock(fake_github, svc, services_remote)
    fake_github.fail_next(2, 502, path_contains="/pulls/1")  # GitHub fails the handler's first two tries
    svc.jobs.handle_delivery("guid-merge", "pull_request", payload)
    work_events(svc)
    assert failure_comments(fake_github) == []  # the failed tries were not told: the third one worked
    [run] = svc.runs_queue.jobs
    assert svc.records.command(run.args[0]).kind == "merge"


def test_the_pr_is_told_once_after_the_last_try_with_advice_for_a_merge(fake_github, worker_services, services_remote,
                                                                         monkeypatch):
    monkeypatch.setenv(RETRY_ENV, "0,0")
    svc = worker_services
    merged_with_lock(fake_github, svc, services_remote)
    # The merge reconciliation found (tfbot was down): its payload is too thin to act on, so GitHub is asked. (A
    # merge GitHub delivered describes the PR whole and is acted on without asking.)
    payload = closed_event(REPO, INSTALLATION, svc.github.repo(INSTALLATION, REPO).pull(1))
    fake_github.fail_next(3, 502, path_contains="/pulls/1")
    svc.jobs.handle_delivery("guid-merge", "pull_request", payload)
    work_events(svc)
    [told] = failure_comments(fake_github)
    assert "could not handle the merge of this PR" in told and "Nothing was applied for this merge" in told
    assert "`tfbot reconcile`" in told and "`apply`" in told and "`plan`" not in told
    assert svc.runs_queue.jobs == []


@pytest.mark.parametrize(
    "kind, event, payload, says, never",
    [
        ("delivery", "pull_request", {"action": "closed", "pull_request": {"merged": True}}, "`apply`", "`plan`"),
        ("delivery", "pull_request", {"action": "closed", "pull_request": {"merged": False}}, "lock page", "`plan`"),
        ("delivery", "pull_request", {"action": "synchronize"}, "`plan`", "reconcile"),
        ("delivery", "issue_comment", {"action": "created"}, "new comment", "`plan`"),
        ("replan", "", None, "`plan`", "reconcile"),
        ("handover", "", None, "`plan`", "reconcile"),
    ],
)
def test_the_advice_fits_the_event(kind, event, payload, says, never):
    what, advice = what_failed(kind, event, payload)
    assert says in advice and never not in advice


# --- nothing is written to GitHub before the jobs are queued ----------------------------------------------------


def test_a_command_is_queued_even_when_github_refuses_its_pending_status(fake_github, worker_services):
    svc = worker_services
    fake_github.add_pull(REPO, 1, head_ref="grow", user="alice", head_sha="a" * 40, base_sha="b" * 40)
    gh = svc.github.repo(INSTALLATION, REPO)
    pull = gh.pull(1)
    # The head was planned before (a `plan` comment plans it again): only then does a plan write a pending status
    # while check runs are on (bot/lifecycle/planning.py pending_needed).
    set_status(svc, gh, "a" * 40, "tfbot/plan", "success", "planned", pull=1)
    fake_github.fail_next(1, 502, path_contains="/statuses/")
    cmd = start_command(svc, "plan", REPO, pull, INSTALLATION, "alice", [NETWORK])
    [run] = svc.runs_queue.jobs
    assert run.args[0] == cmd.id
    assert fake_github.latest_status(REPO, "a" * 40, "tfbot/plan")["state"] == "success"
    start_command(svc, "plan", REPO, pull, INSTALLATION, "alice", [NETWORK])
    assert fake_github.latest_status(REPO, "a" * 40, "tfbot/plan")["state"] == "pending"
    assert len(svc.runs_queue.jobs) == 2
    with pytest.raises(GitHubError):  # the fault injection itself is real: the same call raises without the fix
        fake_github.fail_next(1, 502, path_contains="/statuses/")
        svc.github.repo(INSTALLATION, REPO).set_status("a" * 40, "x", "pending", "d")


# --- a repository taken off config.repos while its events were queued -------------------------------------------


@pytest.mark.parametrize("what", ["opened", "merged", "plan comment", "apply comment"])
def test_an_event_of_a_repository_not_in_the_config_is_ignored(fake_github, worker_services, what):
    svc = worker_services  # configured for acme/* only
    other = "other/infra"
    fake_github.add_repo(other, "file:///nowhere", installation_id=INSTALLATION)
    fake_github.add_pull(other, 1, head_ref="grow", user="alice", head_sha="a" * 40, base_sha="b" * 40)
    if what == "merged":
        fake_github.update_pull(other, 1, merged=True, merge_commit_sha="c" * 40, merged_by="mo")
    repo = fake_github.repo_payload(other)
    if what.endswith("comment"):
        event = "issue_comment"
        made = fake_github.add_comment(other, 1, "alice", what.split()[0])
        payload = wp.issue_comment_event("created", repo, 1, made, INSTALLATION, "alice",
                                         issue=fake_github.issue_payload(other, 1))
    else:
        event = "pull_request"
        payload = wp.pull_request_event("closed" if what == "merged" else what, repo,
                                        fake_github.pull_payload(other, 1), INSTALLATION, "alice")
    assert router.dispatch(Delivery(id="guid-other", event=event, payload=payload), svc) == 1  # no exception
    assert [c["body"] for c in fake_github.comments(other, 1)] == ([what.split()[0]] if event == "issue_comment" else [])
    assert svc.runs_queue.jobs == [] and svc.events_queue.jobs == []
