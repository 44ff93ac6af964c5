"""The drift scheduler on real Redis, real git and the fake GitHub: which checks it queues, once per (project,
slot) across schedulers, the lease that elects one of them and passes on when its holder stops renewing."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from bot.adapters.redis_server import connect
from bot.compose import worker_services as build_worker_services
from bot.config import parse_config
from bot.ops.drift_scheduler import DriftScheduler, config_fingerprint, drift_enabled
from bot.services import WorkerServices
from bot.state import keys
from bot.state.drift_schedule import DriftSlots, SchedulerLease
from bot.models import Project
from tests.support.services_fixtures import INSTALLATION, REPO

HOUR = 3600.0


def at(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


class Clock:
    """The schedulers' time, moved by the test."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_config(fake_github, app_keys, tmp_path, drift: dict[str, Any], projects: list[dict[str, str]] | None):
    repo: dict[str, Any] = {"name": "acme/*", "drift": drift}
    if projects is not None:
        repo["projects"] = projects
    return parse_config({
        "github": {"api_url": fake_github.base_url, "app_id": fake_github.app_id, "private_key": app_keys[0].decode(),
                   "webhook_secret": "s", "retries": 0, "write_interval": 0},
        "data_dir": str(tmp_path / "data"),
        "repos": [repo, {"name": "other/*"}],
    }, base_dir=tmp_path)


@pytest.fixture
def world(fake_github, app_keys, redis_url, redis_conn, tmp_path, services_remote):
    """acme/infra (main: roots `network` and `dns`) installed as 99; other/app installed too, without drift."""
    fake_github.add_repo(REPO, services_remote.clone_url, installation_id=INSTALLATION)
    fake_github.add_repo("other/app", services_remote.clone_url, installation_id=INSTALLATION)

    def scheduler(clock: Clock, drift: dict[str, Any] | None = None, projects: list[dict[str, str]] | None = None,
                  lease_seconds: float = 40.0, owner: str | None = None) -> tuple[DriftScheduler, WorkerServices]:
        """A scheduler with its own Redis connection and its own services, as one host has."""
        config = make_config(fake_github, app_keys, tmp_path,
                             drift or {"enabled": True, "schedule": "0 * * * *"}, projects)
        conn = connect(redis_url)
        svc = build_worker_services(config, conn)
        return DriftScheduler(config, conn, services=lambda: svc, lease_seconds=lease_seconds, clock=clock,
                              owner=owner), svc

    return scheduler


def queued_checks(svc: WorkerServices) -> list[tuple[str, str, str, str]]:
    """(repo, project, reason, link) of every check_drift job waiting on the runs queue, in queue order."""
    found = []
    for job in svc.runs_queue.get_jobs():
        assert job.func_name == "bot.jobs.check_drift"
        project, reason, link = job.args
        found.append((project["repo"], project["name"], reason, link))
    return found


def test_drift_is_scheduled_only_where_a_repos_entry_enables_it(world, fake_github, app_keys, tmp_path):
    assert drift_enabled(make_config(fake_github, app_keys, tmp_path, {"enabled": True}, None))
    assert not drift_enabled(make_config(fake_github, app_keys, tmp_path, {"enabled": False}, None))


def test_due_projects_are_queued_once_per_slot_and_globs_choose_them(world, services_remote):
    clock = Clock(at("2026-03-01 14:20:00"))
    scheduler, svc = world(clock, projects=[{"dir": "network"}, {"dir": "dns"}],
                           drift={"enabled": True, "schedule": "0 * * * *", "projects": ["net*"]})
    tick = scheduler.tick()
    assert tick.leader and tick.queued == ["acme/infra network"]  # a repository never handled: its last slot
    assert queued_checks(svc) == [("acme/infra", "network", "scheduled", "")]
    assert DriftSlots(svc.redis).last(REPO) == at("2026-03-01 14:00:00")
    for seconds in (15, 30, 2000):  # later ticks of the same slot queue nothing
        clock.now = at("2026-03-01 14:20:00") + seconds
        assert scheduler.tick().queued == []
    clock.now = at("2026-03-01 15:00:05")
    assert scheduler.tick().queued == ["acme/infra network"]
    assert len(queued_checks(svc)) == 2


def test_after_downtime_the_missed_slots_make_one_check(world):
    clock = Clock(at("2026-03-01 09:10:00"))
    scheduler, svc = world(clock)
    assert sorted(scheduler.tick().queued) == ["acme/infra dns", "acme/infra network"]  # autodiscovered roots
    clock.now = at("2026-03-01 15:20:00")  # down from 09:10 to 15:20: six fire times missed
    assert sorted(scheduler.tick().queued) == ["acme/infra dns", "acme/infra network"]
    clock.now += 15
    assert scheduler.tick().queued == []
    assert len(queued_checks(svc)) == 4


def test_a_heads_projects_are_read_once_and_a_new_head_is_read_again(world, fake_github, services_remote):
    clock = Clock(at("2026-03-01 14:20:00"))
    scheduler, svc = world(clock)
    scheduler.tick()
    fake_github.reset_requests()
    clock.now = at("2026-03-01 14:29:00")
    scheduler.tick()  # nothing due, and the App's repositories listed under REPOS_SECONDS ago: no call to GitHub
    assert fake_github.requests == []
    clock.now = at("2026-03-01 15:00:10")
    assert sorted(scheduler.tick().queued) == ["acme/infra dns", "acme/infra network"]
    # The same head: the App's repositories listed again (REPOS_SECONDS passed), one read of the repository for
    # its default branch, and the projects kept for that head.
    assert [r.path for r in fake_github.requests if r.path.startswith("/repos/")] == ["/repos/acme/infra"]
    # What the next slot lists for this head is what Redis keeps for it, not a new reading of the commit.
    head = services_remote.branch_sha("main")
    fingerprint = config_fingerprint(scheduler.config.repo_config(REPO))
    slots = DriftSlots(svc.redis)
    assert sorted(p.name for p in slots.projects(REPO, fingerprint, head)) == ["dns", "network"]
    slots.keep_projects(REPO, fingerprint, head, [Project(repo=REPO, name="kept", dir="kept")])
    clock.now = at("2026-03-01 15:30:00")
    assert scheduler.tick().queued == []
    clock.now = at("2026-03-01 16:00:10")
    assert scheduler.tick().queued == ["acme/infra kept"]
    services_remote.commit("main", {"storage/main.tf": "# storage\n"}, "A new root")
    clock.now = at("2026-03-01 17:00:10")
    assert sorted(scheduler.tick().queued) == ["acme/infra dns", "acme/infra network", "acme/infra storage"]


def test_a_repository_whose_head_cannot_be_read_is_tried_again_with_its_slot_still_due(world, fake_github):
    clock = Clock(at("2026-03-01 14:20:00"))
    scheduler, svc = world(clock)
    scheduler.services()  # built before the fault, so the fault meets the read of the repository
    fake_github.fail_next(1, status=502, path_contains="/repos/acme/infra")
    tick = scheduler.tick()
    assert tick.failed == ["acme/infra"] and tick.queued == []
    assert DriftSlots(svc.redis).last(REPO) is None
    clock.now += 30
    assert scheduler.tick().queued == []  # within RETRY_SECONDS: not asked again
    clock.now += 60
    assert sorted(scheduler.tick().queued) == ["acme/infra dns", "acme/infra network"]


def test_two_schedulers_ticking_together_queue_each_due_check_once(world):
    clock = Clock(at("2026-03-01 14:20:00"))
    (a, svc), (b, _) = world(clock, owner="host-a"), world(clock, owner="host-b")
    leaders = []
    for slot in range(3):
        clock.now = at("2026-03-01 14:20:00") + slot * HOUR
        barrier = threading.Barrier(2)

        def run(scheduler: DriftScheduler) -> None:
            barrier.wait()
            for _ in range(5):
                leaders.append((scheduler.owner, scheduler.tick().leader))

        threads = [threading.Thread(target=run, args=(s,)) for s in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    checks = queued_checks(svc)
    assert len(checks) == 6 and len(set(checks)) == 2  # 3 slots x 2 projects, each once
    assert {owner for owner, leader in leaders if leader} == {"host-a"} or \
        {owner for owner, leader in leaders if leader} == {"host-b"}  # the lease never changed hands


def test_claims_of_one_slot_are_won_once_by_racing_threads(redis_url, redis_conn):
    project = Project(repo=REPO, name="network", dir="network")
    won: list[bool] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        slots = DriftSlots(connect(redis_url))
        barrier.wait()
        won.append(slots.claim(project, at("2026-03-01 14:00:00")))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(won) == [False] * 7 + [True]
    assert DriftSlots(redis_conn).claim(project, at("2026-03-01 15:00:00"))  # the next slot is another claim


def test_the_lease_passes_on_when_its_holder_stops_renewing(world, redis_conn):
    clock = Clock(at("2026-03-01 14:20:00"))
    (a, svc), (b, _) = world(clock, lease_seconds=1.0, owner="host-a"), world(clock, lease_seconds=1.0,
                                                                              owner="host-b")
    DriftSlots(redis_conn).handled(REPO, at("2026-03-01 14:00:00"))  # nothing due: the ticks only hold the lease
    for scheduler in (a, b):
        scheduler._installed(clock.now)  # the App's repositories listed ahead, so a tick is quick
    assert a.tick().leader and not b.tick().leader
    assert SchedulerLease(redis_conn, "x", 1000).holder() == "host-a"
    time.sleep(0.6)
    assert a.tick().leader  # renewed: b still waits
    time.sleep(0.6)
    assert not b.tick().leader  # 1.2 s after a took it, 0.6 s after it renewed
    time.sleep(1.2)  # host-a stopped renewing (its host died): the lease runs out
    assert b.tick().leader
    assert not a.lease.renew()  # compare-and-extend: a lapsed holder cannot extend the new holder's lease
    assert not a.lease.release()  # compare-and-delete: nor delete it
    assert SchedulerLease(redis_conn, "x", 1000).holder() == "host-b"
    assert not a.tick().leader
    b.stop()  # a host that stops gives the lease up at once
    assert SchedulerLease(redis_conn, "x", 1000).holder() is None
    assert a.tick().leader


def test_a_scheduler_taking_over_mid_slot_queues_only_what_was_not_queued(world, redis_conn):
    """host-a queued the slot's checks and died before recording the slot as handled: host-b, taking over once
    the lease ran out, finds the slot due again and every check of it claimed."""
    clock = Clock(at("2026-03-01 14:20:00"))
    (a, svc), (b, _) = world(clock, owner="host-a"), world(clock, owner="host-b")
    assert len(a.tick().queued) == 2
    redis_conn.hdel(keys.drift_slots(), REPO)  # where host-a died: the slot not recorded as handled
    assert not b.tick().leader
    redis_conn.pexpire(keys.drift_scheduler(), 1)  # and its lease ran out (the test above waits for that)
    time.sleep(0.05)
    tick = b.tick()
    assert tick.leader and tick.queued == []
    assert DriftSlots(redis_conn).last(REPO) == at("2026-03-01 14:00:00")
    assert len(queued_checks(svc)) == 2


def test_projects_named_in_tfbot_yaml_are_scheduled_under_their_names_when_the_server_reads_it(
        world, services_remote):
    services_remote.commit("main", {"tfbot.yaml": "projects:\n  - name: net\n    dir: network\n"}, "Name a project")
    clock = Clock(at("2026-03-01 14:20:00"))
    scheduler, svc = world(clock, drift={"enabled": True, "schedule": "0 * * * *", "projects": ["net"]})
    assert scheduler.tick().queued == ["acme/infra net"]
