"""Case 2, PR overhead over raw Terraform: a PR adding a project of N `terraform_data` resources, timed from
the `opened` webhook to the plan comment in the fake GitHub, against `terraform init && terraform plan` by hand
on the same configuration (own empty state) in the same run. Raw and tfbot runs alternate, each repeated,
and the medians are compared. A third figure types tfbot's own four Terraform commands by hand (init,
workspace select, plan -out, show -json), which splits the overhead into Terraform's extra steps and tfbot's
machinery; every PR's time is also split into phases from RQ's job timestamps (bench/timeline.py).
While the largest PR is planned, the serve tree's memory is sampled (case 7).
"""
from __future__ import annotations

from typing import Any

from bench.proctree import TreeSampler
from bench.prs import PrTiming, open_and_wait, write_raw_copy
from bench.report import CaseResult
from bench.rig import World
from bench.stats import median

RATIO_TARGETS = {100: 1.25, 1000: 1.10}  # issue 16: tfbot's time over raw `init && plan`, by resource count
SMALL_OVERHEAD_TARGET = 0.15  # seconds over raw, for one resource (issue 16)


def run(world: World, quick: bool) -> tuple[CaseResult, dict[str, Any]]:
    """Case 2; also returns the memory peaks while the largest PR was planned (for case 7)."""
    plan = {1: 1, 10: 1} if quick else {1: 5, 100: 5, 1000: 3}  # resources -> repetitions
    case = CaseResult("pr_overhead", "2 PR overhead vs raw")
    scenario = world.scenario("overhead", workers=2)
    scenario.init_main({"README.md": "bench\n"})
    scenario.start()
    raw_root = world.root / "overhead-raw"
    largest = max(plan)
    memory: dict[str, Any] = {}
    details: dict[str, Any] = {}
    try:
        # The first PR of a server clones the mirror and writes Terraform's CLI config: not what users wait for.
        open_and_wait(scenario, "warm-up", {"warm-up": 1})
        for count, repeats in plan.items():
            raw_times, step_times, prs, raw_peaks = [], [], [], []
            for rep in range(repeats):
                name = f"n{count}-{rep}"
                seconds, peak = world.raw_plan(write_raw_copy(raw_root, name, count))
                raw_times.append(seconds)
                raw_peaks.append(peak)
                step_times.append(world.tfbot_steps(write_raw_copy(raw_root, f"{name}-steps", count)))
                assert scenario.server is not None and scenario.server.proc is not None
                if count == largest and rep == 0:
                    with TreeSampler(scenario.server.proc.pid) as sampler:
                        prs.append(open_and_wait(scenario, f"b-{name}", {name: count}))
                    memory = {"peaks": sampler.peaks, "resources": count}
                else:
                    prs.append(open_and_wait(scenario, f"b-{name}", {name: count}))
            raw, steps, bot = median(raw_times), median(step_times), median([p.seconds for p in prs])
            if count == largest:
                memory["raw_plan_peak_kb"] = median(raw_peaks)
            details[str(count)] = {"raw_seconds": raw_times, "tfbot_steps_by_hand_seconds": step_times,
                                   "tfbot_seconds": [p.seconds for p in prs], "raw_plan_peak_kb": raw_peaks,
                                   "phases_median": _median_phases(prs), "phases": [p.phases for p in prs]}
            label = "resource" if count == 1 else "resources"
            row = case.add(f"{count:,} {label}: opened -> plan comment", bot, "s", baseline=raw,
                           baseline_label="init+plan by hand")
            ratio_target = RATIO_TARGETS.get(count)
            if ratio_target is not None:
                row.target = f"ratio <= {ratio_target:.2f}"
                row.met = row.ratio is not None and row.ratio <= ratio_target
            case.add(f"{count:,} {label}: tfbot's 4 terraform commands by hand", steps, "s", baseline=raw,
                     baseline_label="init+plan by hand")
            if count == 1:
                case.add("1 resource: overhead over raw", bot - raw, "s", target=f"<= {SMALL_OVERHEAD_TARGET} s",
                         met=bot - raw <= SMALL_OVERHEAD_TARGET)
    finally:
        world.stop(scenario)
    case.details = {"repetitions": plan, "workers": 2, "runs": details,
                    "note": "medians; tfbot runs init, workspace, plan -out, show -json, then renders and posts"}
    return case, memory


def _median_phases(prs: list[PrTiming]) -> dict[str, float]:
    names = [name for name in prs[0].phases if all(name in p.phases for p in prs)]
    return {name: round(median([p.phases[name] for p in prs]), 3) for name in names}
