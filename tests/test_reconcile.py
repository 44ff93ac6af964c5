"""Reconciliation of locks whose PR closed while tfbot was down: the pure decision, then one pass against real
Redis, the real lock store and the fake GitHub (the applies it starts are queued, not run)."""
from __future__ import annotations

import pytest

from bot import jobs as jobs_module
from bot.state import keys
from bot.adapters.github import PullInfo
from bot.models import LockInfo, LockState, Project
from bot.queue import EVENT_RETRY_INTERVALS
from bot.ops.reconcile import BY_COMMAND, Action, Reconciled, closed_event, decide, reconcile
from bot.intake.replay import closed_fingerprint, fingerprint
from bot.services import WorkerServices
from bot.intake.webhooks import validate_payload
from tests.support import webhook_payloads as wp
from tests.support.services_fixtures import real_merge, real_pull

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
    assert decide(pull_info("open"), locks) == Action.KEEP
    assert decide(pull_info("closed"), locks) == Action.RELEASE


def test_a_merged_pr_is_handed_over_while_a_lock_never_saw_the_merge():
    for state in (LockState.PLANNING, LockState.PLANNED, LockState.PLAN_FAILED, LockState.APPLIED):
        past = [lock(s, s.name) for s in (LockState.APPLYING, LockState.APPLY_FAILED, LockState.PLAN_STALE)]
        assert decide(pull_info("closed", merged=True), [lock(state, "due"), *past]) == Action.QUEUED
    assert decide(pull_info("closed", merged=True), past) == Action.QUEUED  # WAIT only once its merge was handled


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
def svc(worker_services) -> WorkerServices:
    return worker_services


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


def test_a_lock_a_drift_issue_holds_is_no_pr_to_ask_about(fake_github, svc):
    fake_github.add_repo(REPO, "file:///nowhere", installation_id=99)
    issue = fake_github.add_issue(REPO, title="Drift: acme/infra network", user="alice")["number"]
    svc.locks.try_acquire(NETWORK, issue, "alice", kind="drift", wait=False)  # an `apply` on the issue runs
    open_pr(fake_github, svc, 5, DNS)
    fake_github.update_pull(REPO, 5, state="closed")

    assert [(r.pull, r.action) for r in reconcile(svc)] == [(5, Action.RELEASE)]  # no ERROR for the issue
    assert svc.locks.get(NETWORK).pull == issue and svc.locks.get(DNS) is None
    assert not any(r.path.endswith(f"/pulls/{issue}") for r in fake_github.requests)


def run_event_jobs(svc) -> list[int]:
    """Run the queued event jobs as a worker would; how many handlers each ran."""
    ran = []
    for job in svc.events_queue.jobs:
        ran.append(jobs_module.handle_delivery(svc, *job.args))
        svc.events_queue.remove(job)
    return ran


def test_a_merged_pr_goes_to_the_closed_handler_for_every_project_it_changed_once(fake_github, svc, services_remote):
    head = services_remote.commit("b1", {"network/main.tf": "# n1\n", "dns/main.tf": "# d1\n"}, "both",
                                  parent_branch="main")
    services_remote.create_pull_ref(1, head)
    fake_github.add_pull(REPO, 1, head_ref="b1", user="alice", head_sha=head)
    svc.locks.try_acquire(NETWORK, 1, "alice", waiter={"installation": 99})  # dns was never planned (autoplan off)
    svc.records.set_pull_field(REPO, 1, "installation", "99")
    merge_sha = real_merge(fake_github, services_remote, 1)

    [result] = reconcile(svc)
    assert (result.action, result.projects) == (Action.QUEUED, ("network",))
    [job] = svc.events_queue.jobs
    assert (job.func_name, job.args[1], job.args[2]["action"]) == ("bot.jobs.handle_delivery", "pull_request", "closed")
    [pending] = reconcile(svc)  # another host's pass, or a restart, before a worker took it: not queued twice
    assert pending.action == Action.PENDING and len(svc.events_queue.jobs) == 1

    assert run_event_jobs(svc) == [1]  # the router's closed handler, as for the event GitHub sent
    run_jobs = jobs(svc.runs_queue)
    assert sorted(args[1]["dir"] for _, args in run_jobs) == ["dns", "network"]
    cmd = svc.records.command(run_jobs[0][1][0])
    assert (cmd.kind, cmd.user, cmd.head_sha, cmd.info["merge_commit_sha"]) == ("merge", "mo", head, merge_sha)
    assert "tfbot was down when this PR was merged" in cmd.note
    # Merged: no pending status first (the check run shows the run; bot/lifecycle/planning.py pending_needed).
    assert fake_github.latest_status(REPO, head, "tfbot/apply") is None

    # A later pass does not start it again, nor does the missed webhook when GitHub redelivers it.
    [again] = reconcile(svc)
    assert again.action == Action.HANDLED
    real = wp.pull_request_event("closed", fake_github.repo_payload(REPO), fake_github.pull_payload(REPO, 1), 99, "mo")
    assert jobs_module.handle_delivery(svc, "redelivered-guid", "pull_request", real) == 0
    assert len(svc.runs_queue.jobs) == 2 and svc.events_queue.jobs == []


def test_a_merged_pr_whose_locks_are_past_the_merge_waits_for_a_person(fake_github, svc):
    open_pr(fake_github, svc, 1, NETWORK)
    network = svc.locks.get(NETWORK)
    svc.locks.set_state(NETWORK, 1, network.token, LockState.APPLY_FAILED)
    fake_github.update_pull(REPO, 1, merged=True, merge_commit_sha="c" * 40, merged_by="mo")
    svc.redis.set(keys.event_fingerprint(closed_fingerprint(REPO, 1, True, "c" * 40)), "1")  # its merge was handled

    [result] = reconcile(svc)
    assert (result.action, result.projects) == (Action.WAIT, ("network",))
    assert svc.events_queue.jobs == [] and svc.runs_queue.jobs == []


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
    fake_github.fail_next(1, 502, path_contains="/pulls/1")  # GitHub cannot tell about #1 now

    first = reconcile(svc)
    assert [(r.pull, r.action) for r in first] == [(1, Action.ERROR), (2, Action.QUEUED)]
    assert "502" in first[0].detail
    [again] = [r for r in reconcile(svc) if r.pull == 1]
    assert again.action == Action.QUEUED  # so it is done in the next pass


def test_serve_reconciles_at_start_and_each_period_until_a_pass_succeeds(fake_github, svc, redis_conn):
    from bot.ops.recovery import Recovery

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


# --- merges never handled: opened and merged while tfbot was down -------------------------------------------


def merge(fake, number: int, sha: str = "c" * 40) -> None:
    fake.update_pull(REPO, number, merged=True, merge_commit_sha=sha, merged_by="mo")


def watching_since(redis_conn, seconds_ago: float) -> None:
    import time

    redis_conn.set(keys.merges_watched_since(), str(time.time() - seconds_ago))


def test_a_pr_opened_and_merged_while_down_is_handed_to_the_router_once(fake_github, svc, redis_conn, services_remote):
    watching_since(redis_conn, 3600)
    real_pull(fake_github, services_remote, 5)
    merge_sha = real_merge(fake_github, services_remote, 5)

    [result] = reconcile(svc)
    assert (result.pull, result.action) == (5, Action.QUEUED)
    assert result.line() == f"{REPO}#5: handed to tfbot: merged while tfbot was not listening (merge {merge_sha[:8]})"
    [job] = svc.events_queue.jobs
    delivery_id, event, payload = job.args
    assert (job.func_name, event, payload["action"]) == ("bot.jobs.handle_delivery", "pull_request", "closed")
    assert validate_payload("pull_request", payload) == []
    real = wp.pull_request_event("closed", fake_github.repo_payload(REPO), fake_github.pull_payload(REPO, 5), 99, "mo")
    assert fingerprint("pull_request", payload) == fingerprint("pull_request", real)
    assert job.retries_left == len(EVENT_RETRY_INTERVALS)  # an outage of GitHub does not lose it either

    assert reconcile(svc) == []  # queued already: not again
    assert jobs_module.handle_delivery(svc, delivery_id, event, payload) == 1  # the router's closed handler ran
    assert jobs_module.handle_delivery(svc, "the-real-one-redelivered", "pull_request", real) == 0
    svc.events_queue.empty()
    assert reconcile(svc) == []  # handled: its fingerprint is known


def test_only_unhandled_merges_since_the_watch_began_of_configured_repos_are_handed_over(fake_github, svc, redis_conn):
    import time

    open_pr(fake_github, svc, 1)
    merge(fake_github, 1)  # before tfbot's first pass: not tfbot's to catch up
    time.sleep(1.05)  # GitHub's times are whole seconds
    reconcile(svc)
    assert svc.events_queue.jobs == []
    open_pr(fake_github, svc, 2)
    fake_github.update_pull(REPO, 2, state="closed")  # closed unmerged, without locks: nothing to do
    open_pr(fake_github, svc, 3)
    merge(fake_github, 3, "d" * 40)
    real = wp.pull_request_event("closed", fake_github.repo_payload(REPO), fake_github.pull_payload(REPO, 3), 99, "mo")
    redis_conn.set(keys.event_fingerprint(fingerprint("pull_request", real)), "delivery-3")  # its event was handled
    fake_github.add_repo("other/infra", "file:///nowhere", installation_id=99)  # not in tfbot's config
    fake_github.add_pull("other/infra", 1, head_ref="x", user="alice", head_sha="e" * 40, base_sha="b" * 40)
    fake_github.update_pull("other/infra", 1, merged=True, merge_commit_sha="f" * 40)
    open_pr(fake_github, svc, 4)
    merge(fake_github, 4, "a" * 40)

    assert [(r.repo, r.pull, r.action) for r in reconcile(svc)] == [(REPO, 4, Action.QUEUED)]
    assert not any("/repos/other/infra/pulls" in r.path for r in fake_github.requests)


def test_a_handover_that_failed_for_good_waits_for_tfbot_reconcile(fake_github, svc, redis_conn):
    from rq.job import JobStatus

    watching_since(redis_conn, 60)
    open_pr(fake_github, svc, 6)
    merge(fake_github, 6)
    [queued] = reconcile(svc)
    [job] = svc.events_queue.jobs
    job.set_status(JobStatus.FAILED)  # every retry failed: the PR was told
    svc.events_queue.remove(job)
    assert reconcile(svc) == []  # a periodic pass does not pile up failures on the PR
    [again] = reconcile(svc, origin=BY_COMMAND)  # an admin, once GitHub is back
    assert (again.pull, again.action) == (6, Action.QUEUED) and len(svc.events_queue.jobs) == 1


def test_periodic_passes_look_for_missed_merges_at_most_every_half_hour(fake_github, svc, redis_conn):
    from bot.ops.reconcile import AT_STARTUP, PERIODIC

    watching_since(redis_conn, 60)
    reconcile(svc, origin=PERIODIC)
    open_pr(fake_github, svc, 7)
    merge(fake_github, 7)
    fake_github.reset_requests()
    assert reconcile(svc, origin=PERIODIC) == []  # looked a moment ago
    assert not any(r.path.endswith("/pulls") for r in fake_github.requests)
    assert [r.pull for r in reconcile(svc, origin=AT_STARTUP)] == [7]  # a start always looks
    redis_conn.delete(keys.merges_scan_due())  # half an hour later
    open_pr(fake_github, svc, 8)
    merge(fake_github, 8, "d" * 40)
    assert [r.pull for r in reconcile(svc, origin=PERIODIC)] == [8]


def test_the_pass_summary_counts_prs_and_names_what_github_could_not_list():
    from bot.ops.recovery import reconciliation_summary

    nothing_listed = [Reconciled("*", 0, Action.ERROR, (), "listing repositories: refused")]
    assert reconciliation_summary(nothing_listed, 300) == (
        "reconciliation: 0 PR(s) looked at; 0 acted on; could not list the App's repositories; trying again in 300 s")
    mixed = [Reconciled(REPO, 4, Action.RELEASE, (), ""), Reconciled(REPO, 5, Action.ERROR, (), "502"),
             Reconciled(REPO, 6, Action.HANDLED, (), ""), Reconciled("acme/dns", 0, Action.ERROR, (), "502")]
    assert reconciliation_summary(mixed, 60) == (
        "reconciliation: 3 PR(s) looked at; 1 acted on; 1 PR(s) could not be checked; could not list the merged PRs "
        "of acme/dns; trying again in 60 s")
    assert reconciliation_summary([], 60) == "reconciliation: 0 PR(s) looked at; 0 acted on"
