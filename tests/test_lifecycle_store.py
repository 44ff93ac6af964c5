"""The lifecycle's stores against a real Redis: the reviewed plan survives newer plans in flight (compare-and-set),
and the lock's release script refuses, atomically, what the decision table refuses."""
from __future__ import annotations

import threading
import time

import pytest
import redis

from bot.state.locks import LockStore
from bot.models import LockState, Project
from bot.state.records import HeadSeen, PlanRecord, Records, project_to_dict

pytestmark = pytest.mark.redis

NET = Project(repo="acme/infra", name="net", dir="net")


def record(run_id: str, head: str = "a" * 40, at: float | None = None) -> PlanRecord:
    return PlanRecord(project=project_to_dict(NET), pull=7, head_sha=head, base_sha="", key=f"k-{run_id}",
                      sha256="s", summary="Plan: 1 to add", changes=[["create", "x"]], run_id=run_id, user="u",
                      created_at=at if at is not None else time.time(), digest=f"d-{run_id}")


def test_a_newer_plan_in_flight_never_hides_the_reviewed_one(redis_conn: redis.Redis) -> None:
    records = Records(redis_conn)
    records.save_plan(record("r1", at=1.0))
    assert records.plan(NET, 7) is None  # made, not shown yet: nothing is reviewed
    assert records.mark_plan_posted(NET, 7, "r1") == []
    records.save_plan(record("r2", at=2.0))
    records.save_plan(record("r3", at=3.0))
    assert records.plan(NET, 7).run_id == "r1"  # two newer plans running: r1 is still the reviewed one
    replaced = records.mark_plan_posted(NET, 7, "r3")
    assert records.plan(NET, 7).run_id == "r3"
    assert sorted(p.run_id for p in replaced) == ["r1", "r2"]  # their files are deleted by the caller
    # The slower older plan is posted last: it does not take the place of the newer reviewed one.
    records.save_plan(record("r2", at=2.0))
    assert records.mark_plan_posted(NET, 7, "r2") == []
    assert records.plan(NET, 7).run_id == "r3"


def test_two_plans_of_one_head_keep_their_own_files(redis_conn: redis.Redis) -> None:
    from bot.adapters.plan_store import plan_key

    a, b = plan_key(NET, 7, "a" * 40, "r1"), plan_key(NET, 7, "a" * 40, "r2")
    assert a != b


def test_posting_races_settle_on_the_newest_plan(redis_conn: redis.Redis) -> None:
    records = Records(redis_conn)
    for i in range(20):
        records.save_plan(record(f"r{i:02d}", at=float(i)))
    threads = [threading.Thread(target=records.mark_plan_posted, args=(NET, 7, f"r{i:02d}")) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert records.plan(NET, 7).run_id == "r19"


def test_the_latest_head_is_one_record_ordered_by_arrival(redis_conn: redis.Redis) -> None:
    records = Records(redis_conn)
    y, x = "y" * 40, "x" * 40
    assert records.note_head("acme/infra", 7, y, "2030-01-01T10:00:00Z")
    assert records.note_head("acme/infra", 7, x, "2030-01-01T10:05:00Z")
    # An old event redelivered late does not pass its head for the newest one.
    assert not records.note_head("acme/infra", 7, y, "2030-01-01T10:00:00Z")
    assert records.latest_head("acme/infra", 7) == HeadSeen(x, "2030-01-01T10:05:00Z")
    # The same commit pushed again arrives again: its new time replaces the first one.
    assert records.note_head("acme/infra", 7, y, "2030-01-01T10:40:00Z")
    assert records.latest_head("acme/infra", 7) == HeadSeen(y, "2030-01-01T10:40:00Z")


@pytest.mark.parametrize("state,flag,refused", [
    (LockState.APPLYING, True, "applying"),
    (LockState.APPLIED, True, "flagged"),
    (LockState.APPLY_FAILED, True, "flagged"),
    (LockState.PLANNED, True, "flagged"),  # re-planned after an apply: still flagged
    (LockState.PLANNED, False, ""),
])
def test_a_close_or_writers_unlock_is_refused_inside_the_release_script(
        redis_conn: redis.Redis, state: LockState, flag: bool, refused: str) -> None:
    locks = LockStore(redis_conn)
    lock = locks.try_acquire(NET, 7, "alice").lock
    assert locks.set_state(NET, 7, lock.token, state, diverged=flag)
    result = locks.release(NET, 7, lock.token, mode="unlock")
    assert result.refused == refused and result.released is (not refused)
    if refused:
        assert locks.get(NET).diverged is flag
        assert locks.forget_pull("acme/infra", 7)[0].refused == refused  # a close keeps it too


def test_an_admin_unlock_of_a_running_apply_waits_for_its_death(redis_conn: redis.Redis) -> None:
    locks = LockStore(redis_conn)
    lock = locks.try_acquire(NET, 7, "alice").lock
    locks.try_acquire(NET, 8, "bob")
    locks.set_state(NET, 7, lock.token, LockState.APPLYING, diverged=True)
    assert locks.force_release(NET, "admin").refused == "applying"
    done = locks.force_release(NET, "admin", run_dead=True, with_reason=True)
    assert done.released and done.lock.pull == 8 and not done.lock.diverged  # handed over clean


def test_no_unlock_while_a_run_holds_the_guard_whatever_the_state(redis_conn: redis.Redis) -> None:
    locks = LockStore(redis_conn)
    lock = locks.try_acquire(NET, 7, "alice").lock
    locks.set_state(NET, 7, lock.token, LockState.APPLY_FAILED, diverged=True)  # what a wrong report could leave
    with locks.run_guard(NET, holder="the-running-apply"):
        assert locks.force_release(NET, "admin", run_dead=True).refused == "running"
        assert locks.release(NET, 7, lock.token, mode="unlock").refused == "running"
        assert locks.get(NET).pull == 7
    assert locks.force_release(NET, "admin", run_dead=True, with_reason=True).released


def test_a_close_while_a_plan_runs_releases_and_the_run_is_fenced_out(redis_conn: redis.Redis) -> None:
    locks = LockStore(redis_conn)
    lock = locks.try_acquire(NET, 7, "alice", command_id="plan-1").lock
    with locks.run_guard(NET, holder="plan-1"):
        assert locks.release(NET, 7, None, mode="close").released
        assert not locks.set_state(NET, 7, lock.token, LockState.PLANNED)


def test_a_state_changes_only_if_it_is_still_what_the_run_set(redis_conn: redis.Redis) -> None:
    locks = LockStore(redis_conn)
    lock = locks.try_acquire(NET, 7, "alice", command_id="plan-1").lock
    assert locks.get(NET).command_id == "plan-1"
    assert locks.set_state(NET, 7, lock.token, LockState.APPLYING, command_id="apply-1", run_id="r2")
    assert not locks.set_state(NET, 7, lock.token, LockState.APPLY_FAILED,
                               expect={"state": "applying", "command_id": "plan-1"})
    assert not locks.set_state(NET, 7, lock.token, LockState.APPLY_FAILED, expect={"state": "planned"})
    assert locks.set_state(NET, 7, lock.token, LockState.APPLY_FAILED,
                           expect={"state": "applying", "command_id": "apply-1", "run_id": "r2"})
    assert locks.get(NET).state is LockState.APPLY_FAILED
    locks.try_acquire(NET, 8, "bob")
    handed = locks.release(NET, 7, lock.token)
    assert handed.lock.pull == 8 and handed.lock.command_id == ""  # a hand-over is set by tfbot, not by a run


def test_a_lost_run_guard_stops_the_run_before_its_next_step(redis_conn: redis.Redis) -> None:
    from bot.state import keys
    from bot.lifecycle.runner import GuardLost, guard_fence

    locks = LockStore(redis_conn)
    with locks.run_guard(NET, holder="run-1", ttl=0.3) as guard:
        guard_fence(guard)("init")  # held: goes on
        redis_conn.delete(keys.run_guard(NET.repo, NET.dir, NET.workspace))  # expired under a stall
        deadline = time.monotonic() + 5
        while not guard.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(GuardLost):
            guard_fence(guard)("apply")


@pytest.mark.parametrize("state,flag,by,refused", [
    (LockState.APPLYING, True, "merge-1", "applying"),   # the PR's merge job is applying with this very lock
    (LockState.PLAN_STALE, True, "merge-1", "moved"),    # its merge left it flagged: what the branch holds is unapplied
    (LockState.PLANNING, False, "plan-2", "moved"),      # another plan of the PR runs with it now
    (LockState.PLANNED, False, "plan-1", "moved"),
])
def test_a_plan_job_lets_go_only_of_the_lock_exactly_as_it_took_it(
        redis_conn: redis.Redis, state: LockState, flag: bool, by: str, refused: str) -> None:
    locks = LockStore(redis_conn)
    lock = locks.try_acquire(NET, 7, "alice", command_id="plan-1").lock
    locks.try_acquire(NET, 8, "bob")
    assert locks.set_state(NET, 7, lock.token, state, diverged=flag, command_id=by)
    result = locks.release(NET, 7, lock.token, mode="taken", command_id="plan-1")
    assert result.refused == refused and not result.released
    assert locks.get(NET).pull == 7 and locks.get(NET).state is state


def test_a_plan_job_lets_go_of_its_untouched_lock_unless_a_run_holds_the_guard(redis_conn: redis.Redis) -> None:
    locks = LockStore(redis_conn)
    lock = locks.try_acquire(NET, 7, "alice", command_id="plan-1").lock
    locks.try_acquire(NET, 8, "bob")
    with locks.run_guard(NET, holder="merge-1"):
        assert locks.release(NET, 7, lock.token, mode="taken", command_id="plan-1").refused == "running"
    assert locks.release(NET, 7, lock.token, mode="taken", command_id="").refused == "moved"
    done = locks.release(NET, 7, lock.token, mode="taken", command_id="plan-1")
    assert done.released and done.lock.pull == 8


@pytest.mark.parametrize("state,flag", [
    (LockState.APPLIED, True), (LockState.APPLY_FAILED, True), (LockState.PLAN_STALE, True),
])
def test_an_admin_unlock_of_a_flagged_lock_needs_a_reason_inside_the_release_script(
        redis_conn: redis.Redis, state: LockState, flag: bool) -> None:
    locks = LockStore(redis_conn)
    lock = locks.try_acquire(NET, 7, "alice").lock
    assert locks.set_state(NET, 7, lock.token, state, diverged=flag)
    refused = locks.force_release(NET, "admin", token=lock.token)
    assert refused.refused == "flagged" and not refused.released and refused.lock.state is state
    done = locks.force_release(NET, "admin", token=lock.token, with_reason=True)
    assert done.released and done.previous.state is state and done.previous.diverged is flag
