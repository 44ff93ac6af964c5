"""The lock version and the web process's copy of the locks (bot/state/lock_cache.py), against a real Redis: every
write path of the lock store counts and logs its change, and the page, its JSON and /metrics of two web apps (two web
processes, each with its own copy) show every change at once."""
from __future__ import annotations

import html as html_lib
import json
import re
from typing import Any, Callable

import pytest
import redis

from bot.adapters.redis_server import connect
from bot.models import LockState, Project
from bot.state import keys
from bot.state.lock_cache import LockCache
from bot.state.locks import CHANGE_LOG_LENGTH, LockStore
from tests.support.browser import csrf_of, make_web_app, sign_in

REPO = "acme/infra"
NETWORK = Project(repo=REPO, name="network", dir="network")
DNS = Project(repo=REPO, name="dns", dir="dns")
DB = Project(repo="acme/apps", name="db", dir="db", workspace="prod")


@pytest.fixture
def store(redis_conn: redis.Redis) -> LockStore:
    return LockStore(redis_conn)


def token(store: LockStore, project: Project) -> int:
    lock = store.get(project)
    assert lock is not None
    return lock.token


def key_of(project: Project) -> str:
    return keys.lock(project.repo, project.dir, project.workspace)


# --- the version: every write counts, nothing else does --------------------------------------------------------

# (what is set up first, the write, the lock it changes): one case per way the store changes a lock, its line or the
# index. A case that no longer bumps the version, or logs another lock, fails.
WRITES: dict[str, tuple[Callable[[LockStore], Any], Callable[[LockStore], Any], Project]] = {
    "acquire a free lock": (lambda s: None, lambda s: s.try_acquire(NETWORK, 1, "alice"), NETWORK),
    "join the line": (lambda s: s.try_acquire(NETWORK, 1, "alice"), lambda s: s.try_acquire(NETWORK, 2, "bob"),
                      NETWORK),
    "join the line again (entry refreshed)": (
        lambda s: (s.try_acquire(NETWORK, 1, "alice"), s.try_acquire(NETWORK, 2, "bob")),
        lambda s: s.try_acquire(NETWORK, 2, "bob", pull_title="renamed"), NETWORK),
    "set_state": (lambda s: s.try_acquire(DNS, 1, "alice"),
                  lambda s: s.set_state(DNS, 1, token(s, DNS), LockState.PLANNED, summary="Plan: 1 to add."), DNS),
    "leave the line": (lambda s: (s.try_acquire(NETWORK, 1, "alice"), s.try_acquire(NETWORK, 2, "bob")),
                       lambda s: s.leave_queue(NETWORK, 2), NETWORK),
    "release by its run": (lambda s: s.try_acquire(DB, 1, "alice"), lambda s: s.release(DB, 1, token(s, DB)), DB),
    "release and hand over": (lambda s: (s.try_acquire(DB, 1, "alice"), s.try_acquire(DB, 2, "bob")),
                              lambda s: s.release(DB, 1, None, mode="close"), DB),
    "a writer's unlock": (lambda s: s.try_acquire(DNS, 1, "alice"),
                          lambda s: s.release(DNS, 1, None, mode="unlock"), DNS),
    "let go of a lock just taken": (lambda s: s.try_acquire(DNS, 1, "alice", command_id="c1"),
                                    lambda s: s.release(DNS, 1, token(s, DNS), mode="taken", command_id="c1"), DNS),
    "an admin's unlock": (lambda s: s.try_acquire(NETWORK, 1, "alice"),
                          lambda s: s.force_release(NETWORK, "ana", with_reason=True), NETWORK),
}


@pytest.mark.parametrize("case", list(WRITES))
def test_every_write_counts_and_logs_its_lock(store: LockStore, case: str) -> None:
    setup, write, project = WRITES[case]
    store.try_acquire(Project(repo="acme/other", name="x", dir="x"), 99, "zed")  # the counter exists
    setup(store)
    before, _ = store.changes_since(None)
    write(store)
    now, changes = store.changes_since(before)
    assert before is not None and now == before + 1, case
    assert changes == [(now, key_of(project))], case


def test_forgetting_a_closed_pr_logs_each_lock_it_waited_for_or_held(store: LockStore) -> None:
    store.try_acquire(NETWORK, 1, "alice")
    store.try_acquire(DNS, 2, "bob")
    store.try_acquire(DNS, 1, "alice")  # #1 waits for dns
    before, _ = store.changes_since(None)
    store.forget_pull(REPO, 1)
    now, changes = store.changes_since(before)
    assert before is not None and now == before + 2
    assert sorted(name for _, name in changes) == sorted([key_of(NETWORK), key_of(DNS)])


def test_what_changes_nothing_counts_nothing(store: LockStore, redis_conn: redis.Redis) -> None:
    store.try_acquire(NETWORK, 1, "alice")
    with store.run_guard(DNS, "run-1"):
        store.try_acquire(DNS, 2, "bob")
        before = store.changes_since(None)[0]
        assert store.try_acquire(NETWORK, 1, "alice").already_held
        assert not store.set_state(NETWORK, 1, token(store, NETWORK) + 1, LockState.PLANNED)
        assert not store.release(NETWORK, 9, None).released
        assert store.release(DNS, 2, None, mode="unlock").refused == "running"
        assert not store.leave_queue(NETWORK, 5)
        assert not store.release(DB, 1, None).released
    assert store.changes_since(None)[0] == before


def test_a_new_counter_starts_from_the_clock(store: LockStore, redis_conn: redis.Redis) -> None:
    assert store.changes_since(None) == (None, [])
    store.try_acquire(NETWORK, 1, "alice")
    first, _ = store.changes_since(None)
    server_seconds = redis_conn.time()[0]
    assert first is not None and abs(first / 1_000_000 - server_seconds) < 60
    redis_conn.flushdb()
    store.try_acquire(NETWORK, 1, "alice")
    store.try_acquire(DNS, 1, "alice")
    assert store.changes_since(None)[0] > first + 1  # not first + 1: a reader still holding `first + 1` must notice


def test_the_change_log_keeps_only_the_latest_changes(store: LockStore, redis_conn: redis.Redis) -> None:
    store.try_acquire(NETWORK, 1, "alice")
    start, _ = store.changes_since(None)
    for i in range(CHANGE_LOG_LENGTH + 5):
        store.set_state(NETWORK, 1, token(store, NETWORK), LockState.PLANNED, summary=f"plan {i}")
    assert redis_conn.llen(keys.lock_changes()) == CHANGE_LOG_LENGTH
    now, changes = store.changes_since(start)
    assert now == start + CHANGE_LOG_LENGTH + 5 and changes == []  # too far behind: the log cannot say
    assert store.changes_since(now - 2)[1] == [(now - 1, key_of(NETWORK)), (now, key_of(NETWORK))]


# --- the copy ----------------------------------------------------------------------------------------------------


def test_the_copy_reads_only_what_the_log_names_until_it_is_max_age_old(store: LockStore,
                                                                         redis_conn: redis.Redis) -> None:
    clock = [1000.0]
    cache = LockCache(store, max_age=60, clock=lambda: clock[0])
    store.try_acquire(NETWORK, 1, "alice")
    store.try_acquire(DNS, 2, "bob")
    assert sorted(lk.pull for lk in cache.snapshot().locks) == [1, 2]
    first = cache.snapshot()
    assert cache.snapshot() is first  # nothing changed: the same copy
    # A write that bypasses the scripts (and the version) is invisible to a copy that reads only what the log names...
    hidden = json.loads(redis_conn.get(key_of(NETWORK)))
    redis_conn.set(key_of(NETWORK), json.dumps({**hidden, "user": "mallory"}))
    store.set_state(DNS, 2, token(store, DNS), LockState.PLANNED, summary="Plan: 1 to add.")
    second = cache.snapshot()
    assert second is not first and second.version == first.version + 1
    assert {(lk.dir, lk.user, lk.state) for lk in second.locks} == {("dns", "bob", LockState.PLANNED),
                                                                    ("network", "alice", LockState.PLANNING)}
    # ...until the copy is max_age old: then everything is read again.
    clock[0] += 61
    assert {lk.user for lk in cache.snapshot().locks} == {"bob", "mallory"}


def test_a_copy_further_behind_than_the_log_reads_everything(store: LockStore, redis_conn: redis.Redis) -> None:
    cache = LockCache(store)
    store.try_acquire(NETWORK, 1, "alice")
    store.try_acquire(DNS, 2, "bob")
    cache.snapshot()
    hidden = json.loads(redis_conn.get(key_of(NETWORK)))
    redis_conn.set(key_of(NETWORK), json.dumps({**hidden, "user": "mallory"}))
    for i in range(CHANGE_LOG_LENGTH + 1):
        store.set_state(DNS, 2, token(store, DNS), LockState.PLANNED, summary=f"plan {i}")
    snapshot = cache.snapshot()
    assert {(lk.user, lk.summary) for lk in snapshot.locks} == {("mallory", ""), ("bob", f"plan {CHANGE_LOG_LENGTH}")}


def test_a_flushed_redis_is_never_taken_for_the_copy(store: LockStore, redis_conn: redis.Redis) -> None:
    cache = LockCache(store)
    store.try_acquire(NETWORK, 1, "alice")
    store.try_acquire(DNS, 2, "bob")
    assert len(cache.snapshot().locks) == 2
    redis_conn.flushdb()
    # As many changes as before the flush: a counter that restarted from 1 would be back at the copy's version.
    store.try_acquire(DB, 3, "carol")
    store.try_acquire(DB, 4, "dave")
    snapshot = cache.snapshot()
    assert [(lk.dir, lk.pull) for lk in snapshot.locks] == [("db", 3)] and snapshot.waiting(DB) == 1


def test_without_a_version_nothing_is_kept(store: LockStore, redis_conn: redis.Redis) -> None:
    cache = LockCache(store)
    store.try_acquire(NETWORK, 1, "alice")
    cache.snapshot()
    hidden = json.loads(redis_conn.get(key_of(NETWORK)))
    for user in ("mallory", "oscar"):
        redis_conn.set(key_of(NETWORK), json.dumps({**hidden, "user": user}))
        redis_conn.delete(keys.lock_version())  # what a write outside the scripts must do
        snapshot = cache.snapshot()
        assert snapshot.version is None and [lk.user for lk in snapshot.locks] == [user]


# --- the page, its JSON and the metrics of two web processes ---------------------------------------------------


def truth(store: LockStore) -> dict[tuple[str, str, str], tuple[int, str, str, int]]:
    """Every lock as the store reads it, uncached: (pull, state, summary, PRs waiting) by place."""
    return {(lk.repo, lk.dir, lk.workspace): (lk.pull, lk.state.value, lk.summary, len(store.queue(lk)))
            for lk in store.list()}


def api_view(client: Any) -> dict[tuple[str, str, str], tuple[int, str, str, int]]:
    data = client.get("/api/locks?limit=1000").get_json()
    assert data["total"] == len(data["locks"])
    return {(d["repo"], d["dir"], d["workspace"]): (d["pull_number"], d["state"], d["summary"], d["waiting"])
            for d in data["locks"]}


def page_view(html: str) -> dict[tuple[str, str, str], tuple[int, str, str, int]]:
    rows = {}
    for row in html.split("<tr class=")[1:]:  # the first piece is everything before the first row
        where = re.search(r'data-repo="([^"]*)" data-dir="([^"]*)" data-workspace="([^"]*)" data-pull="(\d+)"', row)
        state = re.search(r'<span class="badge [a-z]+">([^<]+)</span>', row)
        waiting = re.search(r'<span class="waiting"[^>]*>(\d+) waiting</span>', row)
        summary = re.search(r'<span class="summary">(.*?)</span></span>', row)
        assert where and state, row
        rows[where.group(1, 2, 3)] = (int(where[4]), html_lib.unescape(state[1]),
                                      html_lib.unescape(re.sub(r"<[^>]+>", "", summary[1] + "</span>")) if summary
                                      else "", int(waiting[1]) if waiting else 0)
    return rows


def metric_held(client: Any) -> float:
    found = re.search(r"^tfbot_locks_held (\S+)$", client.get("/metrics").get_data(as_text=True), re.M)
    assert found
    return float(found[1])


def test_two_web_processes_show_every_lock_change_at_once(redis_conn: redis.Redis, redis_url: str, tmp_path,
                                                          app_private_key) -> None:
    store = LockStore(redis_conn)
    # Each app has its own services, connection and copy of the locks, as two `tfbot web` processes would.
    apps = [make_web_app(connect(redis_url), tmp_path / name, app_private_key)[0] for name in ("a", "b")]
    clients = [app.test_client() for app in apps]
    admin = apps[1].test_client()
    sign_in(admin)
    etags: list[str | None] = [None, None]

    def unlock_from_the_other_process(project: Project) -> None:
        html = admin.get("/locks").get_data(as_text=True)
        lock = store.get(project)
        assert lock is not None
        ref = {"repo": lock.repo, "dir": lock.dir, "workspace": lock.workspace, "token": lock.token}
        answer = admin.post("/locks/unlock", data={"csrf_token": csrf_of(html), "next": "/locks",
                                                   "lock": json.dumps(ref), "reason": "stuck"})
        assert answer.status_code == 303

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("acquire a free lock", lambda: store.try_acquire(NETWORK, 1, "alice")),
        ("acquire another", lambda: store.try_acquire(DNS, 3, "carol", command_id="c1")),
        ("join the line", lambda: store.try_acquire(NETWORK, 2, "bob")),
        ("record a plan", lambda: store.set_state(NETWORK, 1, token(store, NETWORK), LockState.PLANNED,
                                                  summary="Plan: 1 to add, 0 to change, 0 to destroy.")),
        ("leave the line", lambda: store.leave_queue(NETWORK, 2)),
        ("join the line again", lambda: store.try_acquire(NETWORK, 2, "bob")),
        ("release and hand over", lambda: store.release(NETWORK, 1, token(store, NETWORK))),
        ("let go of a lock just taken", lambda: store.release(DNS, 3, token(store, DNS), mode="taken",
                                                              command_id="c1")),
        ("acquire in another repository", lambda: store.try_acquire(DB, 4, "dave")),
        ("a writer's unlock", lambda: store.release(DB, 4, None, mode="unlock")),
        ("acquire again", lambda: store.try_acquire(DB, 5, "erin")),
        ("an admin's unlock from the other web process", lambda: unlock_from_the_other_process(DB)),
        ("a close", lambda: store.release(NETWORK, 2, None, mode="close")),
        ("acquire two", lambda: (store.try_acquire(NETWORK, 6, "fay"), store.try_acquire(DNS, 6, "fay"))),
        ("forget a closed PR", lambda: store.forget_pull(REPO, 6)),
    ]
    for name, step in [("nothing yet", lambda: None), *steps]:
        step()
        expected = truth(store)
        for i, client in enumerate(clients):
            assert api_view(client) == expected, (name, i)
            page = client.get("/locks", headers={"If-None-Match": etags[i]} if etags[i] else {})
            assert page.status_code == 200, (name, i)  # every step changes what the page shows: never a stale 304
            etags[i] = page.headers["ETag"]
            assert page_view(page.get_data(as_text=True)) == expected, (name, i)
            assert client.get("/locks", headers={"If-None-Match": etags[i]}).status_code == 304, (name, i)
            assert metric_held(client) == len(expected), (name, i)
    assert expected == {}


def test_a_version_that_went_backwards_reads_everything_again():
    from bot.state.lock_cache import changed_keys

    assert changed_keys(5, 7, [(6, "a"), (7, "b")]) == ["a", "b"]
    assert changed_keys(5, 7, [(7, "b")]) is None  # a gap
    assert changed_keys(100, 95, []) is None  # a failover to a replica that is behind
