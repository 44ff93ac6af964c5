"""Case 6, the lock page: `/locks` (HTML, first page) and `/api/locks` (JSON, every lock) of a real
`tfbot serve` holding 10,000 locks, filled through LockStore.try_acquire (one in ten with two PRs waiting)
and set_state (planned, with a summary), as workers would leave them.

Time to first byte is read on a raw socket: from sending the request to the first byte of the answer (the
Flask app builds the whole body before it sends anything, so this is the server's time); the total adds
the transfer. Baseline: LockStore.list() reading the same 10,000 locks from Redis in this process.
"""
from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.report import CaseResult
from bench.rig import World
from bench.stats import median
from bot.state.locks import LockStore
from bot.models import LockState, Project

TARGET_MS = 100.0  # issue 16
REPOS = 20


def fill(store: LockStore, count: int) -> None:
    """`count` locks over 20 repositories; every tenth has two PRs waiting."""

    def one(i: int) -> None:
        project = Project(repo=f"acme/repo-{i % REPOS}", name=f"svc{i}", dir=f"stacks/svc{i:05d}")
        pull = 10_000 + i
        taken = store.try_acquire(project, pull, f"user{i % 37}", pull_title=f"Change service {i}",
                                  pull_url=f"https://github.com/acme/repo-{i % REPOS}/pull/{pull}")
        store.set_state(project, pull, taken.lock.token, LockState.PLANNED,
                        summary="Plan: 3 to add, 1 to change, 0 to destroy.", run_id=f"run{i:06d}")
        if i % 10 == 0:
            for waiter in (1, 2):
                store.try_acquire(project, 50_000 + i * 2 + waiter, "bob", pull_title="Waits its turn")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))


def get(port: int, path: str) -> tuple[float, float, int, int]:
    """(seconds to first byte, seconds to the end, body bytes, status) of one GET on a new connection."""
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept-Encoding: identity\r\n"
               "Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        start = time.perf_counter()
        sock.sendall(request)
        first = sock.recv(65536)
        ttfb = time.perf_counter() - start
        chunks = [first]
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        total = time.perf_counter() - start
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return ttfb, total, len(body), status


def run(world: World, quick: bool) -> CaseResult:
    count, repeats = (1000, 3) if quick else (10_000, 5)
    case = CaseResult("lock_page", "6 lock page")
    scenario = world.scenario("lock-page", workers=1)
    scenario.start()
    try:
        conn = scenario.redis()
        store = LockStore(conn)
        start = time.perf_counter()
        fill(store, count)
        fill_seconds = time.perf_counter() - start
        listed = store.list()
        assert len(listed) == count, len(listed)
        list_ms = median([_ms(store.list) for _ in range(repeats)])
        details: dict[str, Any] = {"locks": count, "fill_seconds": fill_seconds, "repeats": repeats,
                                   "lockstore_list_ms": list_ms}
        for path in ("/locks", "/api/locks"):
            get(scenario.port, path)  # the first request of a path compiles templates and warms caches
            samples = [get(scenario.port, path) for _ in range(repeats)]
            statuses = {s[3] for s in samples}
            if statuses != {200}:
                raise RuntimeError(f"GET {path} answered {statuses}")
            ttfb = median([s[0] * 1000 for s in samples])
            total = median([s[1] * 1000 for s in samples])
            size = samples[-1][2]
            case.add(f"GET {path} ({count:,} locks): time to first byte", ttfb, "ms", baseline=list_ms,
                     baseline_label="LockStore.list()", target=f"<= {TARGET_MS:.0f} ms", met=ttfb <= TARGET_MS)
            case.add(f"GET {path}: whole answer, size {size / 1024:,.0f} KiB", total, "ms")
            details[path] = {"ttfb_ms": [s[0] * 1000 for s in samples], "total_ms": [s[1] * 1000 for s in samples],
                             "bytes": size}
        case.details = details
    finally:
        world.stop(scenario)
    return case


def _ms(func: Any) -> float:
    start = time.perf_counter()
    func()
    return (time.perf_counter() - start) * 1000
