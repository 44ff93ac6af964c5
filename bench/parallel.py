"""Case 3, parallel projects: one PR adding 8 projects (4 with --quick), planned by `tfbot serve` with
`workers` 1, 2 and 4, against two baselines of the same configurations by hand (`terraform init && terraform
plan`): one after another, and two at a time (a pool of 2). The second is the floor two workers can reach:
Terraform already spreads one plan over more than one core, so two at once do not take half the time of two in
a row. Each `workers` setting is its own `tfbot serve`; the clock runs from the `opened` webhook to the one
comment that reports every plan."""
from __future__ import annotations

import os
import resource

from bench.prs import open_and_wait, write_raw_copy
from bench.report import CaseResult
from bench.rig import World

WORKERS_2_RATIO_TARGET = 0.65
RAW_AT_ONCE = 2  # the raw baseline's pool: what two workers would be if tfbot cost nothing


def run(world: World, quick: bool) -> CaseResult:
    worker_counts, projects, count = ((1, 2), 4, 5) if quick else ((1, 2, 4), 8, 300)
    case = CaseResult("parallel", "3 parallel projects")
    raw_root = world.root / "parallel-raw"
    names = [f"p{i}" for i in range(projects)]
    before = children_cpu()
    raw = sum(world.raw_plan(write_raw_copy(raw_root, name, count))[0] for name in names)
    raw_cpu = children_cpu() - before  # the bench waits for each terraform itself: their CPU lands here
    # Fresh copies: an init already made in a directory would make the second baseline cheaper than the first.
    pool_root = world.root / "parallel-raw-pool"
    pool = world.raw_plans_at_once([write_raw_copy(pool_root, name, count) for name in names], RAW_AT_ONCE)
    in_a_row, at_once = f"{projects} raw plans in a row", f"{projects} raw plans {RAW_AT_ONCE} at a time"
    case.add(at_once, pool, "s", baseline=raw, baseline_label=in_a_row,
             note=f"the floor of workers {RAW_AT_ONCE}: Terraform alone, {RAW_AT_ONCE} at once, on "
                  f"{os.cpu_count()} cores")
    case.add("cores a raw init && plan keeps busy, in a row (its CPU seconds / its seconds)", raw_cpu / raw, "",
             note=f"above 1: Terraform's graph walk runs in parallel, so {RAW_AT_ONCE} at once cannot halve the time")
    walls: dict[int, float] = {}
    phases: dict[int, dict[str, float]] = {}
    jobs: dict[int, dict[str, object]] = {}
    for workers in worker_counts:
        scenario = world.scenario(f"parallel-w{workers}", workers=workers)
        scenario.init_main({"README.md": "bench\n"})
        scenario.start()
        try:
            timing = open_and_wait(scenario, "many", {name: count for name in names})
            walls[workers] = timing.seconds
            phases[workers] = timing.phases
            jobs[workers] = timing.jobs
        finally:
            world.stop(scenario)
        row = case.add(f"{projects} projects x {count} resources, workers {workers}", walls[workers], "s",
                       baseline=raw, baseline_label=in_a_row,
                       note=f"the floor is the row '{at_once}', not the baseline / cores")
        if workers == 2:  # issue 16: two cores run two plans at once
            row.target = f"ratio <= {WORKERS_2_RATIO_TARGET:.2f}"
            row.met = row.ratio is not None and row.ratio <= WORKERS_2_RATIO_TARGET
        case.add(f"{projects} projects x {count} resources, workers {workers}, against raw {RAW_AT_ONCE} at a time",
                 walls[workers], "s", baseline=pool, baseline_label=at_once,
                 note="1.00x: tfbot costs nothing over Terraform run by hand as parallel as it")
    first = walls[worker_counts[0]]
    for workers in worker_counts[1:]:
        case.add(f"speed-up of workers {workers} over workers 1", first / walls[workers], "x",
                 note=f"{os.cpu_count()} cores")
    case.details = {"projects": projects, "resources_each": count, "raw_sequential_seconds": raw,
                    "raw_sequential_cpu_seconds": raw_cpu, f"raw_{RAW_AT_ONCE}_at_a_time_seconds": pool, "tfbot_seconds_by_workers": walls,
                    "cores": os.cpu_count(), "phases_by_workers": phases, "project_jobs_by_workers": jobs}
    return case


def children_cpu() -> float:
    """User + system CPU seconds of every child process this process has waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
