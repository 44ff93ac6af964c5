"""Case 5, workspace locks (bot.state.locks.LockStore) against a real Redis (the embedded Valkey server tfbot uses).

Round trips: one thread acquiring and releasing one project's lock as fast as it can, against the bare
Redis commands a lock needs at the least (`SET NX` then `DEL`, two round trips) on the same connection
pool; LockStore runs a Lua script for each (two round trips too), so the ratio is the scripts' cost.
Race: 100 threads released together by a barrier all try to take one fresh project's lock; exactly one
must win, the other 99 must be in its waiting line once each, every round.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from bench.report import CaseResult
from bench.rig import World
from bot.state.locks import AcquireResult, LockStore
from bot.models import Project
from bot.adapters.redis_server import EmbeddedRedis, connect

RACERS = 100


def project(i: int) -> Project:
    return Project(repo="acme/infra", name=f"stack{i}", dir=f"stacks/stack{i}")


def run(world: World, quick: bool) -> CaseResult:
    seconds, rounds = (1.0, 10) if quick else (3.0, 100)
    case = CaseResult("locks", "5 locks")
    server = EmbeddedRedis(world.root / "locks")
    conn = connect(server.start())
    try:
        store = LockStore(conn)
        bare = _rate(lambda i: (conn.set("bench:bare", i, nx=True), conn.delete("bench:bare")), seconds)
        p = project(0)
        locks = _rate(lambda i: (store.try_acquire(p, 1, "alice"), store.release(p, 1, None)), seconds)
        case.add("acquire+release round trips (1 thread)", locks, "/s", baseline=bare,
                 baseline_label="SET NX + DEL")
        good, details = _race(store, rounds)
        case.add(f"race: {RACERS} threads, rounds with exactly one winner", good, "count",
                 target=f"{rounds} of {rounds}", met=good == rounds)
        case.details = {"round_trip_seconds": seconds, "bare_per_second": bare, "locks_per_second": locks, **details}
    finally:
        server.stop()
    return case


def _rate(step: Callable[[int], object], seconds: float) -> float:
    """How many times per second `step(i)` runs, over about `seconds`."""
    for i in range(50):  # warm the connection and the scripts' cache
        step(i)
    done, start = 0, time.perf_counter()
    while True:
        for _ in range(100):
            step(done)
            done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def _race(store: LockStore, rounds: int) -> tuple[int, dict[str, object]]:
    """Run `rounds` races; (rounds with exactly one winner and 99 distinct waiters, details)."""
    barrier = threading.Barrier(RACERS + 1)
    results: list[list[object]] = [[None] * RACERS for _ in range(rounds)]
    errors: list[str] = []

    def racer(pull: int) -> None:
        for r in range(rounds):
            barrier.wait()
            try:
                results[r][pull - 1] = store.try_acquire(project(1000 + r), pull, f"user{pull}")
            except Exception as exc:  # noqa: BLE001 - a failure is a result here, counted below
                errors.append(f"{type(exc).__name__}: {exc}")
            barrier.wait()

    threads = [threading.Thread(target=racer, args=(pull,), daemon=True) for pull in range(1, RACERS + 1)]
    for t in threads:
        t.start()
    good, winners_per_round, round_ms = 0, [], []
    for r in range(rounds):
        start = time.perf_counter()
        barrier.wait()  # go
        barrier.wait()  # all answered
        round_ms.append((time.perf_counter() - start) * 1000)
        outcomes = results[r]
        winners = [o for o in outcomes if isinstance(o, AcquireResult) and o.acquired]
        winners_per_round.append(len(winners))
        line = store.queue(project(1000 + r))
        holder = store.get(project(1000 + r))
        waiting = sorted(e["pull"] for e in line)
        if (len(winners) == 1 and holder is not None and holder.pull == winners[0].lock.pull
                and waiting == sorted(set(range(1, RACERS + 1)) - {holder.pull})):
            good += 1
    for t in threads:
        t.join()
    round_ms.sort()
    return good, {"rounds": rounds, "winners_per_round_seen": sorted(set(winners_per_round)), "errors": errors[:5],
                  "race_round_ms_median": round_ms[len(round_ms) // 2]}
