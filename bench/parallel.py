"""Case 3, parallel projects: one PR adding 8 projects (4 with --quick), planned by `tfbot serve` with
`workers` 1, 2 and 4, against the same configurations planned one after another by hand (`terraform init &&
terraform plan`). Each `workers` setting is its own `tfbot serve`; the clock runs from the `opened` webhook to
the one comment that reports every plan."""
from __future__ import annotations

import os

from bench.prs import open_and_wait, write_raw_copy
from bench.report import CaseResult
from bench.rig import World

WORKERS_2_RATIO_TARGET = 0.65


def run(world: World, quick: bool) -> CaseResult:
    worker_counts, projects, count = ((1, 2), 4, 5) if quick else ((1, 2, 4), 8, 300)
    case = CaseResult("parallel", "3 parallel projects")
    raw_root = world.root / "parallel-raw"
    names = [f"p{i}" for i in range(projects)]
    raw = sum(world.raw_plan(write_raw_copy(raw_root, name, count))[0] for name in names)
    walls: dict[int, float] = {}
    phases: dict[int, dict[str, float]] = {}
    for workers in worker_counts:
        scenario = world.scenario(f"parallel-w{workers}", workers=workers)
        scenario.init_main({"README.md": "bench\n"})
        scenario.start()
        try:
            timing = open_and_wait(scenario, "many", {name: count for name in names})
            walls[workers] = timing.seconds
            phases[workers] = timing.phases
        finally:
            world.stop(scenario)
        row = case.add(f"{projects} projects x {count} resources, workers {workers}", walls[workers], "s",
                       baseline=raw, baseline_label=f"{projects} raw plans in a row",
                       note="ideal on this machine: the baseline / min(workers, cores)")
        if workers == 2:  # issue 16: two cores run two plans at once
            row.target = f"ratio <= {WORKERS_2_RATIO_TARGET:.2f}"
            row.met = row.ratio is not None and row.ratio <= WORKERS_2_RATIO_TARGET
    first = walls[worker_counts[0]]
    for workers in worker_counts[1:]:
        case.add(f"speed-up of workers {workers} over workers 1", first / walls[workers], "x",
                 note=f"{os.cpu_count()} cores")
    case.details = {"projects": projects, "resources_each": count, "raw_sequential_seconds": raw,
                    "tfbot_seconds_by_workers": walls, "cores": os.cpu_count(), "phases_by_workers": phases}
    return case
