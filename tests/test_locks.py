"""The lock store and run guard against a real Redis, including races between threads and processes."""
from __future__ import annotations

import multiprocessing
import os
import random
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import redis

from bot.state import keys
from bot.state.locks import GuardTimeout, LockStore, ReleaseResult
from bot.models import LockState, Project
from bot.adapters.redis_server import connect

ROOT = Path(__file__).resolve().parents[1]
REPO = "acme/infra"


def _project(dir: str = "net", workspace: str = "default", repo: str = REPO) -> Project:
    return Project(repo=repo, name=f"{dir}-{workspace}", dir=dir, workspace=workspace)


@pytest.fixture()
def store(redis_conn: redis.Redis) -> LockStore:
    return LockStore(redis_conn)


# --- acquire ------------------------------------------------------------------------------------


def test_a_free_lock_is_taken_with_a_fresh_fencing_token(store: LockStore) -> None:
    net, app = _project("net"), _project("app", "staging")

    # Non-ASCII and escapes survive the JSON round trip through Lua's cjson.
    title = 'Añadir "VPC" \\ 🚀'
    first = store.try_acquire(net, 7, "alice", pull_title=title, pull_url="https://example.test/pull/7")
    second = store.try_acquire(app, 8, "bob")

    assert first.acquired and not first.already_held and first.queue_position is None
    lock = first.lock
    assert (lock.repo, lock.dir, lock.workspace, lock.project) == (REPO, "net", "default", "net-default")
    assert (lock.pull, lock.user, lock.pull_title, lock.state) == (7, "alice", title, LockState.PLANNING)
    assert lock.pull_url == "https://example.test/pull/7"
    assert store.get(net) == lock
    assert second.lock.token > lock.token > 0


def test_the_holder_acquiring_again_gets_its_lock_back_unchanged(store: LockStore) -> None:
    net = _project()
    first = store.try_acquire(net, 7, "alice")

    again = store.try_acquire(net, 7, "carol", pull_title="renamed")

    assert again.acquired and again.already_held
    assert again.lock == first.lock
    assert store.queue(net) == []


def test_other_pulls_wait_in_line_once_each_and_learn_their_place(store: LockStore) -> None:
    net = _project()
    holder = store.try_acquire(net, 1, "alice").lock

    blocked = [store.try_acquire(net, pull, f"user{pull}", waiter={"installation": pull}) for pull in (2, 3, 4)]
    again = store.try_acquire(net, 3, "dave", waiter={"installation": 99})

    assert [(r.acquired, r.queue_position, r.lock) for r in blocked] == [(False, n, holder) for n in (1, 2, 3)]
    assert (again.acquired, again.queue_position) == (False, 2)
    line = store.queue(net)
    assert [entry["pull"] for entry in line] == [2, 3, 4]
    # Joining again refreshes the entry in place: its latest data, its old place.
    assert (line[1]["user"], line[1]["installation"]) == ("dave", 99)
    assert [store.position(net, pull) for pull in (1, 2, 3, 4)] == [None, 1, 2, 3]
    assert store.get(net) == holder


def test_waiter_data_may_not_overwrite_the_entry_fields(store: LockStore) -> None:
    with pytest.raises(ValueError, match="pull"):
        store.try_acquire(_project(), 2, "bob", waiter={"pull": 3})


# --- release and hand-over ----------------------------------------------------------------------


def test_release_hands_the_lock_to_waiters_in_first_come_order(store: LockStore, redis_conn: redis.Redis) -> None:
    net = _project()
    lock = store.try_acquire(net, 1, "alice").lock
    for pull in (2, 3, 4):
        store.try_acquire(net, pull, f"user{pull}", pull_title=f"PR {pull} 🚀", waiter={"installation": 40 + pull})

    for pull in (2, 3, 4):
        result = store.release(net, lock.pull, lock.token)
        assert result.released and result.previous == lock
        assert result.next_waiter is not None
        assert (result.next_waiter["pull"], result.next_waiter["installation"]) == (pull, 40 + pull)
        new = result.lock
        assert new is not None and store.get(net) == new
        assert (new.pull, new.user, new.pull_title, new.state) == (pull, f"user{pull}", f"PR {pull} 🚀", LockState.PLANNING)
        assert new.token > lock.token
        assert store.position(net, pull) is None
        lock = new

    last = store.release(net, 4, lock.token)
    assert (last.released, last.next_waiter, last.lock, last.previous) == (True, None, None, lock)
    assert store.get(net) is None and store.list() == []
    assert redis_conn.smembers(keys.lock_index()) == set()


def test_strangers_and_stale_tokens_cannot_release_or_change_a_lock(store: LockStore) -> None:
    net = _project()
    old = store.try_acquire(net, 1, "alice").lock
    store.try_acquire(net, 2, "bob")
    new = store.release(net, 1, old.token).lock
    assert new is not None and new.pull == 2

    for token in (old.token, None):  # the old holder, with its token or with any
        refused = store.release(net, 1, token)
        assert (refused.released, refused.lock, refused.next_waiter, refused.previous) == (False, new, None, None)
    assert not store.release(net, 2, old.token).released  # right pull, token from before the hand-over
    assert not store.set_state(net, 1, old.token, LockState.APPLYING)
    assert not store.set_state(net, 2, old.token, LockState.APPLYING)
    assert not store.holds(net, 1, old.token) and store.holds(net, 2, new.token)
    assert store.get(net) == new

    assert store.release(net, 2, None).released  # None: any token of this pull (the PR was closed)
    assert store.release(net, 2, None) == store.release(_project("elsewhere"), 2, None) == ReleaseResult(False)


def test_force_release_frees_whoever_holds_and_hands_on(store: LockStore) -> None:
    net = _project()
    held = store.try_acquire(net, 1, "alice").lock
    store.try_acquire(net, 2, "bob")

    stale = store.force_release(net, "admin", token=held.token + 1000)
    result = store.force_release(net, "admin", token=held.token)

    assert not stale.released and stale.lock == held
    assert result.released and result.previous == held
    assert result.lock is not None and result.lock.pull == 2 and store.get(net) == result.lock
    assert store.force_release(net, "admin").released
    assert store.get(net) is None
    assert not store.force_release(net, "admin").released


def test_forget_pull_leaves_lines_and_hands_over_its_locks(store: LockStore) -> None:
    net, app, db = _project("net"), _project("app"), _project("db")
    store.try_acquire(net, 5, "eve")
    store.try_acquire(net, 6, "frank", waiter={"installation": 1})
    store.try_acquire(app, 7, "gina")
    store.try_acquire(app, 5, "eve")
    store.try_acquire(db, 5, "eve")

    assert [lock.dir for lock in store.queued_for(REPO, 5)] == ["app"]
    results = store.forget_pull(REPO, 5)

    assert sorted((r.previous.dir, r.lock.pull if r.lock else None) for r in results if r.previous) == [
        ("db", None), ("net", 6)
    ]
    assert store.get(net).pull == 6 and store.get(db) is None and store.get(app).pull == 7
    assert store.queue(app) == [] and store.locks_of_pull(REPO, 5) == []


def test_leave_queue_only_removes_that_pull(store: LockStore) -> None:
    net = _project()
    store.try_acquire(net, 1, "alice")
    for pull in (2, 3, 4):
        store.try_acquire(net, pull, "bob")

    assert store.leave_queue(net, 3)
    assert not store.leave_queue(net, 3)
    assert [e["pull"] for e in store.queue(net)] == [2, 4] and store.position(net, 4) == 2


# --- state and listing --------------------------------------------------------------------------


def test_set_state_records_progress_for_the_holder_only(store: LockStore) -> None:
    net = _project()
    lock = store.try_acquire(net, 3, "alice").lock

    assert store.set_state(net, 3, lock.token, LockState.APPLY_FAILED, summary="Error: boom", run_id="r-1")

    now = store.get(net)
    assert (now.state, now.summary, now.run_id) == (LockState.APPLY_FAILED, "Error: boom", "r-1")
    assert (now.pull, now.token, now.user, now.locked_at) == (3, lock.token, "alice", lock.locked_at)
    with pytest.raises(ValueError, match="user"):  # who holds a lock is not a state
        store.set_state(net, 3, lock.token, LockState.PLANNED, user="mallory")
    assert store.get(net) == now


def test_listing_many_locks_by_repo_and_by_pull(store: LockStore) -> None:
    # More than one MGET chunk, and a repo whose name extends another's.
    for n in range(1200):
        store.try_acquire(_project(f"mod/{n:04d}"), n % 3, "alice")
    store.try_acquire(_project("net", repo="acme/infra2"), 0, "bob")
    store.try_acquire(_project("a:b", "prod", repo="other/x"), 9, "carol")

    everything = store.list()
    mine = store.list(REPO)

    assert len(everything) == 1202
    assert [lock.dir for lock in mine] == [f"mod/{n:04d}" for n in range(1200)]
    assert [lock.repo for lock in store.list("acme/infra2")] == ["acme/infra2"]
    assert [(lock.dir, lock.workspace) for lock in store.list("other/x")] == [("a:b", "prod")]
    assert [lock.dir for lock in store.locks_of_pull(REPO, 2)] == [f"mod/{n:04d}" for n in range(2, 1200, 3)]
    assert store.list("acme") == []


# --- races ---------------------------------------------------------------------------------------


def test_fifty_threads_racing_for_one_lock_leave_one_winner_and_a_clean_line(
    redis_url: str, redis_conn: redis.Redis
) -> None:
    clients = [connect(redis_url) for _ in range(50)]
    stores = [LockStore(client) for client in clients]
    observer = LockStore(redis_conn)
    pulls = [100 + i for i in range(50)]
    try:
        for round in range(20):
            net = _project(f"race/{round}")
            barrier = threading.Barrier(50)
            results: list[list] = [[] for _ in pulls]

            def attempt(i: int) -> None:
                barrier.wait()
                for _ in range(2):  # the second attempt must neither move nor duplicate the pull
                    results[i].append(stores[i].try_acquire(net, pulls[i], f"user{i}"))

            threads = [threading.Thread(target=attempt, args=(i,)) for i in range(50)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

            winners = [i for i, (first, _) in enumerate(results) if first.acquired]
            assert len(winners) == 1
            lock = results[winners[0]][0].lock
            assert results[winners[0]][1].already_held and results[winners[0]][1].lock == lock
            assert observer.get(net) == lock
            line = [entry["pull"] for entry in observer.queue(net)]
            losers = [i for i in range(50) if i != winners[0]]
            assert sorted(line) == sorted(pulls[i] for i in losers)  # each loser exactly once
            for i in losers:
                first, second = results[i]
                assert first.lock == lock and first.queue_position == second.queue_position
                assert line[first.queue_position - 1] == pulls[i]
    finally:
        for client in clients:
            client.close()


def _race_in_process(url: str, pull: int, dirs: list[str], barrier, results) -> None:
    store = LockStore(connect(url))
    order = list(dirs)
    random.Random(pull).shuffle(order)
    barrier.wait()
    results.put([(d, pull, *_outcome(store.try_acquire(_project(d), pull, f"p{pull}"))) for d in order])


def _outcome(result) -> tuple[bool, int | None]:
    return result.acquired, result.queue_position


def test_four_processes_racing_for_twenty_five_locks(redis_url: str, store: LockStore) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    dirs = [f"proc/{n}" for n in range(25)]
    pulls = [1001, 1002, 1003, 1004]
    procs = [ctx.Process(target=_race_in_process, args=(redis_url, p, dirs, barrier, results)) for p in pulls]
    for proc in procs:
        proc.start()
    rows = [row for _ in procs for row in results.get(timeout=60)]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0

    assert len(rows) == 100
    for d in dirs:
        mine = [(pull, acquired, place) for dd, pull, acquired, place in rows if dd == d]
        winners = [pull for pull, acquired, _ in mine if acquired]
        assert len(winners) == 1 and store.get(_project(d)).pull == winners[0]
        line = [entry["pull"] for entry in store.queue(_project(d))]
        assert sorted(line) == sorted(p for p in pulls if p != winners[0])
        assert all(line[place - 1] == pull for pull, acquired, place in mine if not acquired)


def test_duplicate_releases_racing_release_once(redis_url: str, store: LockStore) -> None:
    net = _project()
    lock = store.try_acquire(net, 1, "alice").lock
    store.try_acquire(net, 2, "bob")
    clients = [connect(redis_url) for _ in range(10)]
    barrier = threading.Barrier(10)
    outcomes: list = []

    def release(client: redis.Redis) -> None:
        barrier.wait()
        outcomes.append(LockStore(client).release(net, 1, lock.token))

    threads = [threading.Thread(target=release, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for client in clients:
        client.close()

    assert sum(o.released for o in outcomes) == 1
    assert store.get(net).pull == 2 and store.queue(net) == []


def test_acquires_racing_releases_lose_and_duplicate_nobody(redis_url: str, store: LockStore) -> None:
    net = _project()
    pulls = list(range(1, 41))
    holders: list[int] = []  # every pull that got the lock, by a free acquire or a hand-over
    refusals: list = []
    done = threading.Event()
    clients = [connect(redis_url) for _ in pulls]

    def acquire(pull: int, client: redis.Redis) -> None:
        if LockStore(client).try_acquire(net, pull, "u").acquired:
            holders.append(pull)

    def churn() -> None:
        releaser = LockStore(connect(redis_url))
        while not done.is_set() or releaser.get(net) is not None:
            lock = releaser.get(net)
            if lock is not None:
                result = releaser.release(net, lock.pull, lock.token)
                if not result.released:  # nobody else releases, so this would be a bug
                    refusals.append(result)
                if result.lock is not None:
                    holders.append(result.lock.pull)

    churner = threading.Thread(target=churn)
    churner.start()
    threads = [threading.Thread(target=acquire, args=(p, c)) for p, c in zip(pulls, clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    churner.join()
    for client in clients:
        client.close()

    assert refusals == []
    assert sorted(holders) == pulls
    assert store.get(net) is None and store.queue(net) == []


# --- run guard -----------------------------------------------------------------------------------


def test_run_guard_lets_one_run_at_a_time(redis_url: str, redis_conn: redis.Redis) -> None:
    net = _project()
    events: list[tuple[str, int]] = []
    record = threading.Lock()
    clients = [connect(redis_url) for _ in range(6)]

    def run(i: int, client: redis.Redis) -> None:
        store = LockStore(client)
        for _ in range(5):
            with store.run_guard(net, f"worker{i}", ttl=5, wait=60):
                with record:
                    events.append(("enter", i))
                threading.Event().wait(0.002)  # widen the window a broken guard would show
                with record:
                    events.append(("exit", i))

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for client in clients:
        client.close()

    assert len(events) == 60
    for (kind_in, who_in), (kind_out, who_out) in zip(events[::2], events[1::2]):
        assert (kind_in, kind_out, who_in) == ("enter", "exit", who_out)
    assert redis_conn.get(keys.run_guard(net.repo, net.dir, net.workspace)) is None


def test_run_guard_is_renewed_while_held_and_refuses_others(store: LockStore, redis_conn: redis.Redis) -> None:
    net = _project()
    with store.run_guard(net, "worker1", ttl=0.6) as guard:
        threading.Event().wait(1.5)  # well past the TTL: only renewal keeps it
        with pytest.raises(GuardTimeout, match="worker1"):
            with LockStore(redis_conn).run_guard(net, "worker2", wait=0):
                pass
        assert not guard.lost and store.guard_holder(net) == "worker1"
    assert store.guard_holder(net) is None


def test_a_lost_guard_is_noticed_and_not_released_from_under_its_new_owner(
    store: LockStore, redis_conn: redis.Redis
) -> None:
    net = _project()
    key = keys.run_guard(net.repo, net.dir, net.workspace)
    with store.run_guard(net, "worker1", ttl=0.3) as guard:
        redis_conn.set(key, "worker2 abc")  # as if ours expired and another run took it
        for _ in range(200):
            if guard.lost:
                break
            threading.Event().wait(0.05)
        assert guard.lost
    assert store.guard_holder(net) == "worker2"


def test_a_crashed_holders_guard_expires_by_itself(redis_url: str, store: LockStore) -> None:
    net = _project()
    holder = textwrap.dedent(
        f"""
        import sys, time
        from bot.state.locks import LockStore
        from bot.models import Project
        from bot.adapters.redis_server import connect
        project = Project(repo={net.repo!r}, name={net.name!r}, dir={net.dir!r}, workspace={net.workspace!r})
        with LockStore(connect(sys.argv[1])).run_guard(project, "crasher", ttl=1.5, wait=5):
            print("held", flush=True)
            time.sleep(600)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", holder, redis_url], cwd=ROOT, env=env, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"held\n"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()

    assert store.guard_holder(net) == "crasher"
    with store.run_guard(net, "survivor", ttl=5, wait=20):
        assert store.guard_holder(net) == "survivor"


def test_a_drift_issue_never_joins_the_line_and_hands_on_to_a_pr(store: LockStore) -> None:
    project = _project()
    store.try_acquire(project, 3, "bob")
    busy = store.try_acquire(project, 15, "alice", kind="drift", wait=False)
    assert (busy.acquired, busy.lock.pull, busy.queue_position) == (False, 3, None)
    assert store.queue(project) == []  # not in line: the issue's `apply` is refused, naming #3
    store.release(project, 3, None)

    taken = store.try_acquire(project, 15, "alice", kind="drift", wait=False)
    assert (taken.acquired, taken.lock.kind, store.get(project).kind) == (True, "drift", "drift")
    store.try_acquire(project, 4, "carol")  # a PR waits behind the issue
    handed = store.release(project, 15, taken.lock.token)
    assert handed.next_waiter is not None and handed.next_waiter["pull"] == 4
    assert (store.get(project).pull, store.get(project).kind) == (4, "pull")
