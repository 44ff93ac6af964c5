"""Case 8, a burst: 50 PRs opened at once, each adding its own project (6 with --quick), against `tfbot serve` with
`workers: 2`. The `opened` deliveries are sent together over as many connections; the clock runs from sending them
to each PR's plan comment in the fake GitHub. Reported: the last comment against the same 50 configurations planned
by hand one after another (`terraform init && terraform plan`) divided by the cores, which is what two cores could
do at best, and the spread between the first comment and the last (a project that waited behind unrelated busy
ones shows as a late comment)."""
from __future__ import annotations

import os
import time
import uuid

from bench.http_load import build_request, run_load
from bench.prs import POLL_SECONDS, resources, write_raw_copy
from bench.report import CaseResult
from bench.rig import World
from bench.stats import percentile
from tests.support import webhook_payloads as wp
from tests.support.scenario import INSTALLATION, REPO, SECRET, SUMMARY_RE

WORKERS = 2


def run(world: World, quick: bool) -> CaseResult:
    prs, count, timeout = (6, 1, 120.0) if quick else (50, 10, 600.0)
    cores = os.cpu_count() or 1
    case = CaseResult("burst", "8 burst of PRs")
    names = [f"b{i}" for i in range(prs)]
    raw_root = world.root / "burst-raw"
    raw = sum(world.raw_plan(write_raw_copy(raw_root, name, count))[0] for name in names)
    scenario = world.scenario("burst", workers=WORKERS)
    scenario.init_main({"README.md": "bench\n"})
    scenario.start()
    try:
        numbers = [scenario.open_pr(f"burst-{name}", {f"{name}/main.tf": scenario.config_for(name, resources(count))},
                                    send=False) for name in names]
        requests = []
        for number in numbers:
            payload = wp.pull_request_event("opened", scenario.fake.repo_payload(REPO),
                                            scenario.fake.pull_payload(REPO, number), INSTALLATION, "alice")
            body = wp.encode(payload)
            requests.append(build_request("127.0.0.1", scenario.port, "/events",
                                          wp.headers("pull_request", body, SECRET, str(uuid.uuid4())), body))
        start = time.perf_counter()
        answers = run_load("127.0.0.1", scenario.port, requests, concurrency=prs)
        refused = [a for a in answers.answers if a.status != 202]
        if refused:
            raise RuntimeError(f"{len(refused)} of the {prs} `opened` deliveries were not queued: {refused[0]}")
        commented = _wait_for_plans(scenario, numbers, count, start, timeout)
    finally:
        world.stop(scenario)
    times = sorted(commented.values())
    ideal = raw / cores
    case.add(f"{prs} PRs x 1 project of {count} resources, opened at once: last plan comment", times[-1], "s",
             baseline=ideal, baseline_label=f"{prs} raw plans / {cores} cores",
             note=f"{WORKERS} workers; {prs} raw plans in a row took {raw:.1f} s")
    case.add("first plan comment", times[0], "s")
    case.add("median plan comment", percentile(times, 50), "s")
    case.add("spread, first to last comment", times[-1] - times[0], "s")
    case.details = {"prs": prs, "resources_each": count, "workers": WORKERS, "cores": cores,
                    "raw_sequential_seconds": raw, "ideal_seconds": ideal,
                    "comment_seconds_by_pr": {str(n): round(s, 3) for n, s in sorted(commented.items())}}
    return case


def _wait_for_plans(scenario, numbers: list[int], count: int, start: float, timeout: float) -> dict[int, float]:  # type: ignore[no-untyped-def]
    """Seconds from `start` to each PR's plan comment, polled in the fake GitHub (in this process)."""
    expected = f"Plan: {count} to add, 0 to change, 0 to destroy."
    seen: dict[int, float] = {}
    deadline = start + timeout
    while len(seen) < len(numbers):
        now = time.perf_counter()
        if now > deadline:
            missing = [n for n in numbers if n not in seen]
            raise RuntimeError(f"no plan comment on {len(missing)} PR(s) after {timeout:.0f} s, e.g. #{missing[0]}: "
                               f"{scenario.bot_comments(missing[0])}\n--- log ---\n{scenario.logs()[-4000:]}")
        for number in numbers:
            if number in seen:
                continue
            found = [s for c in scenario.bot_comments(number) for s in SUMMARY_RE.findall(c)]
            if found:
                if set(found) != {expected}:
                    raise RuntimeError(f"unexpected plan in PR #{number}: {found}")
                seen[number] = now - start
        time.sleep(POLL_SECONDS)
    return seen
