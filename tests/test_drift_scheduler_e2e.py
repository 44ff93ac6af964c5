"""Two real `tfbot serve` hosts on one Redis schedule each due drift check once; when the scheduler's host stops,
the other takes over and schedules the next slot, once (issue 15). A schedule of every minute keeps it short."""
from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from typing import Iterator

import pytest

from bot.state import keys
from tests.support.cluster import Cluster, shared_redis  # noqa: F401 - a fixture
from tests.support.tfbot_process import wait_for

pytestmark = pytest.mark.e2e

PROJECTS = ("network", "dns")
QUEUED = re.compile(r"drift: queued the scheduled check of \d+ project\(s\) of (\S+) for the slot of (\S+): (.*)")


@pytest.fixture
def cluster(tmp_path, fake_github, app_keys, shared_redis, moto_server_url) -> Iterator[Cluster]:
    cl = Cluster(tmp_path, fake_github, app_keys[0], redis_url=shared_redis, s3_url=moto_server_url,
                 bucket=f"tfbot-plans-{uuid.uuid4().hex[:8]}",
                 repo_settings={"drift": {"enabled": True, "schedule": "* * * * *"}})
    yield cl
    cl.stop()


def queued(cl: Cluster) -> list[tuple[str, str]]:
    """(slot, project) of every scheduled check any host's log says it queued, in no particular order."""
    found = []
    for match in QUEUED.finditer("".join(h.logs(tail=10**7) for h in cl.hosts.values())):
        for item in match.group(3).split(", "):
            found.append((match.group(2), item.strip()))
    return found


def scheduler_host(cl: Cluster) -> str:
    """The name of the host whose `tfbot serve` holds the scheduler's lease (its owner token names its pid)."""
    owner = cl.redis().get(keys.drift_scheduler())
    assert owner is not None, "no host holds the drift scheduler's lease"
    pid = int(owner.decode().split(":")[1])
    names = [name for name, host in cl.hosts.items() if host.server and host.server.proc
             and host.server.proc.pid == pid]
    assert len(names) == 1, (owner, {n: h.server.proc.pid for n, h in cl.hosts.items() if h.server and h.server.proc})
    return names[0]


def test_two_hosts_schedule_each_due_check_once_and_the_other_takes_over(cluster):
    cl = cluster
    cl.init_main({f"{p}/main.tf": cl.config_for(p, {"base": "1"}) for p in PROJECTS})
    cl.add_host("a")
    cl.add_host("b")
    cl.start_hosts()
    # drift was never scheduled on this Redis: the latest slot is due at once, on whichever host is elected.
    wait_for(lambda: len(queued(cl)) >= 2, timeout=60, message="the first slot's checks to be queued")
    first = scheduler_host(cl)
    time.sleep(5)  # both hosts have ticked since (every 15 s, the first at start): nobody queued it again
    checks = queued(cl)
    counts = Counter(checks)
    assert all(n == 1 for n in counts.values()), f"a check queued twice: {counts}\n{cl.logs()}"
    first_slot = min(slot for slot, _ in checks)
    assert sorted(p for slot, p in checks if slot == first_slot) == [f"acme/infra {p}" for p in sorted(PROJECTS)]
    assert cl.hosts[first].logs().count("drift: this host is the drift scheduler") == 1
    other = "b" if first == "a" else "a"
    assert "drift: this host is the drift scheduler" not in cl.hosts[other].logs()

    cl.hosts[first].stop()  # gives the lease up as it stops: the other host takes it at its next tick
    wait_for(lambda: "drift: this host is the drift scheduler" in cl.hosts[other].logs(), timeout=30,
             message=f"host {other} to become the drift scheduler")
    assert scheduler_host(cl) == other
    seen = {slot for slot, _ in queued(cl)}
    wait_for(lambda: {slot for slot, _ in queued(cl)} - seen, timeout=75, interval=1,
             message="the next slot's checks to be queued by the new scheduler")
    time.sleep(1)
    counts = Counter(queued(cl))
    assert all(n == 1 for n in counts.values()), f"a check queued twice: {counts}\n{cl.logs()}"
    new_slots = {slot for slot, _ in counts} - seen
    for slot in new_slots:
        assert sorted(p for s, p in counts if s == slot) == [f"acme/infra {p}" for p in sorted(PROJECTS)]
    assert all(match.group(2) in seen for match in QUEUED.finditer(cl.hosts[first].logs(tail=10**7)))
