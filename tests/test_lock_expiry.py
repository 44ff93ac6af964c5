"""Lock expiry (`locks.expire_after`): the rule as values, durations as people write them, and end to end: an idle
planned lock is released and handed to the PR waiting for it, which is planned; an applied one is never released.
Real git, real Terraform, the fake GitHub, `tfbot serve` as a subprocess; the pass is called as the recovery
thread calls it, with a clock moved past the limit."""
from __future__ import annotations

import time
from dataclasses import replace

import pytest
from pydantic import ValidationError

from bot.config.durations import describe, seconds
from bot.config.models import LocksConfig
from bot.lifecycle.expiry import expired, expiry_message
from bot.models import LockInfo, LockState, Project
from bot.state import audit
from tests.support.scenario import REPO

HOUR = 3600.0
LOCK = LockInfo(repo=REPO, dir="network", workspace="default", project="network", pull=1, user="alice",
                locked_at=1000.0, token=1, state=LockState.PLANNED)


@pytest.mark.parametrize("state", list(LockState))
def test_only_locks_of_prs_that_only_planned_expire(state):
    lock = replace(LOCK, state=state)
    assert expired(lock, None, 1000.0 + HOUR, HOUR) is (state in (LockState.PLANNED, LockState.PLAN_FAILED,
                                                                  LockState.PLAN_STALE))
    assert not expired(replace(lock, diverged=True), None, 1000.0 + HOUR, HOUR)  # merged and not applied yet


def test_the_idle_clock_starts_at_the_prs_last_push_comment_or_run():
    assert not expired(LOCK, None, 1000.0 + HOUR - 1, HOUR)
    assert expired(LOCK, 500.0, 1000.0 + HOUR, HOUR)  # activity before the lock was taken counts for nothing
    assert not expired(LOCK, 2000.0, 1000.0 + HOUR, HOUR) and expired(LOCK, 2000.0, 2000.0 + HOUR, HOUR)


def test_durations_read_as_people_write_them():
    assert [seconds(v) for v in ("7d", "12h", "1d12h", "90m", 45, None, "off", 0)] == \
        [604800, 43200, 129600, 5400, 45, None, None, None]
    assert [describe(v) for v in (604800, 86400 * 3, 7200, 5400, 61)] == \
        ["1 week", "3 days", "2 hours", "90 minutes", "61 seconds"]
    with pytest.raises(ValidationError, match="must be a duration such as 90s, 15m, 2h or 1d12h, got 'soon'"):
        LocksConfig(expire_after="soon")
    with pytest.raises(ValidationError, match="not negative"):
        LocksConfig(expire_after=-1)


def test_the_pr_hears_why_and_how_to_take_it_back():
    text = expiry_message("`network`", 7 * 86400, 5)
    assert "no push, comment or run for 1 week (`locks.expire_after`)" in text
    assert "The lock goes to #5, which tfbot plans now." in text and "Comment `plan` to take the lock again" in text


def test_the_recovery_pass_expires_idle_locks_on_the_host_that_has_the_period(fake_github, worker_services,
                                                                              redis_conn):
    from bot.ops.recovery import Recovery

    network = Project(repo=REPO, name="network", dir="network")
    svc = replace(worker_services, config=worker_services.config.model_copy(update={"locks": LocksConfig(
        expire_after=0.5)}))
    acquired = svc.locks.try_acquire(network, 7, "alice")
    assert svc.locks.set_state(network, 7, acquired.lock.token, LockState.PLANNED)
    time.sleep(0.6)
    Recovery(svc.config, redis_conn, services=lambda: svc).run_pass(startup=True)
    assert svc.locks.get(network) is None
    [job] = [j for j in svc.events_queue.jobs if j.func_name == "bot.jobs.announce_expiry"]
    assert list(job.args[1:]) == [0.5, None]


def test_the_lock_of_a_pr_the_same_pass_finds_merged_does_not_expire(fake_github, worker_services, redis_conn,
                                                                       services_remote):
    """Merged while tfbot missed the event: reconciliation hands the merge on, and the expiry after it in the same
    pass must not give the lock away before the merge is applied."""
    from bot.ops.recovery import Recovery
    from tests.support.services_fixtures import real_merge, real_pull

    network = Project(repo=REPO, name="network", dir="network")
    svc = replace(worker_services, config=worker_services.config.model_copy(update={"locks": LocksConfig(
        expire_after=0.5)}))
    real_pull(fake_github, services_remote, 7)
    acquired = svc.locks.try_acquire(network, 7, "alice")
    assert svc.locks.set_state(network, 7, acquired.lock.token, LockState.PLANNED)
    time.sleep(0.6)
    real_merge(fake_github, services_remote, 7)
    Recovery(svc.config, redis_conn, services=lambda: svc).run_pass(startup=True)
    assert "bot.jobs.announce_expiry" not in [j.func_name for j in svc.events_queue.jobs]
    assert svc.locks.get(network).pull == 7


@pytest.mark.e2e
def test_an_idle_planned_lock_passes_to_the_next_pr_and_an_applied_one_stays(make_scenario):
    from bot.compose import worker_services
    from bot.config import parse_config
    from bot.ops.expiry import expire_idle_locks

    sc = make_scenario(extra_settings={"locks": {"expire_after": "1h"}})
    sc.init_main({"network/main.tf": sc.config_for("network", {"vpc": "a"})})
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()
    a = sc.open_pr("a", {"network/main.tf": sc.config_for("network", {"vpc": "b"})})
    sc.wait_comment(a, lambda body: "Planned: `network`" in body)
    b = sc.open_pr("b", {"network/main.tf": sc.config_for("network", {"vpc": "c"})}, author="bob")
    sc.wait_comment(b, lambda body: f"locked by #{a}" in body)
    svc = worker_services(parse_config(sc.settings, base_dir=sc.tmp), sc.redis())

    assert expire_idle_locks(svc) == []  # not idle yet
    time.sleep(1.5)  # the comment comes well after the lock was taken (a plan can take less than a second)
    sc.comment(a, "carol", "Waiting for the network team's review.")  # people talking: the clock starts again
    sc.wait_idle()
    assert expire_idle_locks(svc, now=sc.lock("network").locked_at + 3601) == []
    [released] = expire_idle_locks(svc, now=time.time() + 3601)
    assert (released.pull, released.state) == (a, LockState.PLANNED)
    told = sc.wait_comment(a, lambda body: "was released" in body)
    assert "had no push, comment or run for 1 hour" in told and f"The lock goes to #{b}" in told
    sc.wait_comment(b, lambda body: "Planned: `network`" in body)
    assert sc.lock("network").pull == b
    [unlock] = [e for e in audit.entries(sc.redis(), REPO) if e.action == "unlock"]
    assert unlock.user == "tfbot" and "locks.expire_after" in unlock.detail and unlock.pull == a

    sc.comment(b, "alice", "apply")
    sc.wait_comment(b, lambda body: "Applied: `network`" in body)
    assert sc.lock("network").state == LockState.APPLIED
    assert expire_idle_locks(svc, now=time.time() + 30 * 86400) == []  # applied and not merged: never expires
    assert sc.lock("network").pull == b
