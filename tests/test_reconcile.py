"""Reconciliation of locks whose PR closed while tfbot was down: the pure decision, then one pass against real
Redis, the real lock store and the fake GitHub (the applies it starts are queued, not run)."""
from __future__ import annotations

import pytest

from bot import jobs as jobs_module
from bot import keys
from bot.config import parse_config
from bot.github_api import PullInfo
from bot.models import LockInfo, LockState, Project
from bot.reconcile import Action, closed_event, decide, reconcile
from bot.replay import fingerprint
from bot.services import WorkerServices
from bot.webhooks import validate_payload
from tests.support import webhook_payloads as wp

REPO = "acme/infra"
NETWORK = Project(repo=REPO, name="network", dir="network")
DNS = Project(repo=REPO, name="dns", dir="dns")


def pull_info(state: str = "open", merged: bool = False) -> PullInfo:
    return PullInfo(number=3, title="t", author="alice", state=state, draft=False, merged=merged, head_sha="a" * 40,
                    head_ref="f", base_sha="b" * 40, base_ref="main", merge_commit_sha="c" * 40, is_fork=False,
                    mergeable=True, html_url="", clone_url="file:///nowhere", merged_by="mo" if merged else "")


def lock(state: LockState, dir: str = "network") -> LockInfo:
    return LockInfo(repo=REPO, dir=dir, workspace="default", project=dir, pull=3, user="alice", locked_at=0,
                    token=1, state=state)


# --- the decision ----------------------------------------------------------------------------------------------


def test_an_open_pr_keeps_its_locks_and_a_closed_one_releases_all():
    locks = [lock(LockState.PLANNED), lock(LockState.APPLY_FAILED, "dns")]
    assert decide(pull_info("open"), locks) == (Action.KEEP, [])
    assert decide(pull_info("closed"), locks) == (Action.RELEASE, locks)


def test_a_merged_pr_applies_only_the_locks_that_never_saw_the_merge():
    due = [lock(s, s.name) for s in (LockState.PLANNING, LockState.PLANNED, LockState.PLAN_FAILED, LockState.APPLIED)]
    past = [lock(s, s.name) for s in (LockState.APPLYING, LockState.APPLY_FAILED, LockState.PLAN_STALE)]
    assert decide(pull_info("closed", merged=True), due + past) == (Action.APPLY, due)
    assert decide(pull_info("closed", merged=True), past) == (Action.WAIT, [])


def test_the_missed_event_is_a_valid_closed_event_with_the_fingerprint_of_the_real_one(fake_github):
    fake_github.add_repo(REPO, "file:///nowhere", installation_id=99)
    fake_github.add_pull(REPO, 3, head_ref="f", user="alice", head_sha="a" * 40, base_sha="b" * 40)
    fake_github.update_pull(REPO, 3, merged=True, merge_commit_sha="c" * 40, merged_by="mo")
    real = wp.pull_request_event("closed", fake_github.repo_payload(REPO), fake_github.pull_payload(REPO, 3), 99, "mo")
    ours = closed_event(REPO, 99, pull_info("closed", merged=True))
    assert validate_payload("pull_request", ours) == []
    assert fingerprint("pull_request", ours) == fingerprint("pull_request", real) is not None


# --- a pass ----------------------------------------------------------------------------------------------------


@pytest.fixture
def svc(fake_github, app_keys, redis_conn, tmp_path) -> WorkerServices:
    config = parse_config({
        "github": {"api_url": fake_github.base_url, "app_id": fake_github.app_id, "private_key": app_keys[0].decode(),
                   "webhook_secret": "s", "retries": 0, "write_interval": 0},
        "data_dir": str(tmp_path),
        "repos": [{"name": "acme/*", "projects": [{"dir": "network"}, {"dir": "dns"}]}],
    }, base_dir=tmp_path)
    fake_github.add_repo(REPO, "file:///nowhere", installation_id=99)
    return WorkerServices(config, redis_conn)


def open_pr(fake, svc, number: int, *projects: Project, record_installation: bool = True) -> None:
    fake.add_pull(REPO, number, head_ref=f"b{number}", user="alice", head_sha=f"{number:040d}", base_sha="b" * 40)
    for project in projects:
        svc.locks.try_acquire(project, number, "alice", waiter={"installation": 99})
    if record_installation:
        svc.records.set_pull_field(REPO, number, "installation", "99")


def jobs(queue) -> list[tuple[str, tuple]]:
    return [(job.func_name, tuple(job.args)) for job in queue.jobs]


def test_a_pr_closed_unmerged_loses_its_lock_to_the_next_in_line(fake_github, svc):
    open_pr(fake_github, svc, 1, NETWORK, record_installation=False)
    open_pr(fake_github, svc, 2, NETWORK)  # waits behind #1
    fake_github.update_pull(REPO, 1, state="closed")

    [result] = reconcile(svc)  # #2 only waits in line: it holds no lock yet
    assert result.line() == f"{REPO}#1 (network): released: the PR was closed without merging"
    assert svc.locks.get(NETWORK).pull == 2
    [(func, args)] = jobs(svc.events_queue)
    assert func == "bot.jobs.plan_waiter" and args[1] == 2
    # #1's installation was not recorded: it was asked of GitHub with the App's JWT.
    assert any(r.path == "/repos/acme/infra/installation" for r in fake_github.requests)
    [now] = reconcile(svc)
    assert (now.pull, now.action) == (2, Action.KEEP)  # #2 holds it now, and its PR is open


def test_a_merged_pr_gets_its_merge_command_with_a_note_once(fake_github, svc):
    open_pr(fake_github, svc, 1, NETWORK, DNS)
    network = svc.locks.get(NETWORK)
    svc.locks.set_state(NETWORK, 1, network.token, LockState.APPLY_FAILED)  # waits for a person: not retried
    fake_github.update_pull(REPO, 1, merged=True, merge_commit_sha="c" * 40, merged_by="mo")

    [result] = reconcile(svc)
    assert (result.action, result.projects) == (Action.APPLY, ("dns",))
    [(func, (command_id, project))] = jobs(svc.runs_queue)
    assert func == "bot.jobs.run_project" and project["dir"] == "dns"
    cmd = svc.records.command(command_id)
    assert (cmd.kind, cmd.user, cmd.head_sha, cmd.info["merge_commit_sha"]) == ("merge", "mo", f"{1:040d}", "c" * 40)
    assert "tfbot was down when this PR was merged" in cmd.note
    assert fake_github.latest_status(REPO, f"{1:040d}", "tfbot/apply")["state"] == "pending"

    # A second pass (another host, a restart before the apply ran, `tfbot reconcile`) does not start it again,
    # nor does the missed webhook when GitHub redelivers it.
    [again] = reconcile(svc)
    assert again.action == Action.HANDLED
    real = wp.pull_request_event("closed", fake_github.repo_payload(REPO), fake_github.pull_payload(REPO, 1), 99, "mo")
    jobs_module.set_services(svc)
    try:
        assert jobs_module.handle_delivery("redelivered-guid", "pull_request", real) == 0
    finally:
        jobs_module.set_services(None)
    assert len(svc.runs_queue.jobs) == 1


def test_a_closing_event_already_handled_is_left_to_its_handler(fake_github, svc, redis_conn):
    open_pr(fake_github, svc, 1, NETWORK)
    fake_github.update_pull(REPO, 1, merged=True, merge_commit_sha="c" * 40, merged_by="mo")
    real = wp.pull_request_event("closed", fake_github.repo_payload(REPO), fake_github.pull_payload(REPO, 1), 99, "mo")
    redis_conn.set(keys.event_fingerprint(fingerprint("pull_request", real)), "delivery-1")  # as bot.jobs does

    [result] = reconcile(svc)
    assert result.action == Action.HANDLED
    assert svc.runs_queue.jobs == [] and svc.locks.get(NETWORK).pull == 1


def test_a_failure_leaves_the_pr_for_the_next_pass_and_the_others_proceed(fake_github, svc):
    open_pr(fake_github, svc, 1, NETWORK)
    open_pr(fake_github, svc, 2, DNS)
    for number in (1, 2):
        fake_github.update_pull(REPO, number, merged=True, merge_commit_sha="c" * 40, merged_by="mo")
    fake_github.fail_next(1, 502, path_contains="/statuses/")  # the merge command of #1 cannot start

    first = reconcile(svc)
    assert [(r.pull, r.action) for r in first] == [(1, Action.ERROR), (2, Action.APPLY)]
    assert "502" in first[0].detail
    [again] = [r for r in reconcile(svc) if r.pull == 1]
    assert again.action == Action.APPLY  # its claim was given back, so it is done now


def test_serve_reconciles_at_start_and_each_period_until_a_pass_succeeds(fake_github, svc, redis_conn):
    from bot.recovery import Recovery

    open_pr(fake_github, svc, 1, NETWORK)
    fake_github.update_pull(REPO, 1, state="closed")
    recovery = Recovery(svc.config, redis_conn, services=lambda: svc)
    fake_github.fail_next(1, 502, path_contains="/pulls/1")  # GitHub has a bad moment at startup

    recovery.run_pass(startup=True)
    assert not recovery.reconciled and svc.locks.get(NETWORK).pull == 1
    recovery.run_pass()  # next period: this host does not redeliver (the period is taken) but reconciles
    assert recovery.reconciled and svc.locks.get(NETWORK) is None
    fake_github.reset_requests()
    open_pr(fake_github, svc, 2, NETWORK)
    fake_github.update_pull(REPO, 2, state="closed")
    recovery.run_pass()
    assert not any("/pulls/" in r.path for r in fake_github.requests)  # done once per start: not again
    assert svc.locks.get(NETWORK).pull == 2
