"""`tfbot serve` with two web processes (`server.processes: 2`): webhooks counted by either process, and by processes
that died since, add up in `/metrics` whichever process answers the scrape (Prometheus' multiprocess mode); files of
an earlier run are removed at start; nothing queued is lost."""
from __future__ import annotations

import os
import re
import signal
import time
import uuid

import pytest
import requests

from bench.proctree import children_of, cmdline
from tests.support import webhook_payloads as wp
from tests.support.scenario import INSTALLATION, REPO, SECRET
from tests.support.tfbot_process import wait_for

pytestmark = pytest.mark.e2e
QUEUED = re.compile(r'^tfbot_webhooks_received_total\{event="pull_request",outcome="queued"\} (\S+)$', re.M)


def labeled(number: int) -> bytes:
    repo = wp.repository(REPO)
    payload = wp.pull_request_event("opened", repo, wp.pull_request(repo, number, "a" * 40, f"b{number}", "0" * 40),
                                    INSTALLATION, "alice")
    payload["action"] = "labeled"  # intake queues it; a worker routes it to no handler
    return wp.encode(payload)


def web_workers(serve_pid: int) -> list[int]:
    masters = [pid for pid in children_of(serve_pid) if "bot web" in " ".join(cmdline(pid))]
    assert len(masters) == 1, masters
    return children_of(masters[0])


def queued_counts(url: str, scrapes: int) -> set[float]:
    """The queued count each of `scrapes` scrapes reports (each on a new connection: any process may answer)."""
    found = set()
    for _ in range(scrapes):
        match = QUEUED.search(requests.get(url + "/metrics", timeout=10).text)
        found.add(float(match.group(1)) if match else 0.0)
    return found


def test_two_web_processes_count_every_delivery_in_every_scrape(make_scenario):
    scenario = make_scenario(workers=1)
    scenario.settings["server"]["processes"] = 2
    stale = scenario.tmp / "data" / "prometheus-web"
    stale.mkdir(parents=True)
    (stale / "counter_999999.db").write_bytes(b"left by an earlier run")
    scenario.start()
    assert not (stale / "counter_999999.db").exists()
    server = scenario.server
    assert server is not None and server.proc is not None
    first = wait_for(lambda: len(web_workers(server.proc.pid)) == 2 and web_workers(server.proc.pid), timeout=30,
                     message="two web worker processes")

    for number in range(1, 11):
        assert server.post_event("pull_request", labeled(number), SECRET, str(uuid.uuid4())).status_code == 202
    assert queued_counts(server.url, 6) == {10.0}

    for pid in first:  # both die; gunicorn starts two others, whose counts must add to the dead ones'
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: (lambda now: len(now) == 2 and not set(now) & set(first))(web_workers(server.proc.pid)),
             timeout=30, message="two new web worker processes")
    for number in range(11, 16):
        answer = None
        for _ in range(50):  # a new worker may still be booting: a refused connection is retried, never a 5xx
            try:
                answer = server.post_event("pull_request", labeled(number), SECRET, str(uuid.uuid4()))
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert answer is not None and answer.status_code == 202
    assert queued_counts(server.url, 6) == {15.0}
    assert len({p.name for p in stale.glob("counter_*.db")}) >= 3  # the dead processes' files are still summed
