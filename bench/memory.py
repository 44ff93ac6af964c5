"""Case 7, memory: peak RSS (VmHWM) of each process of the `tfbot serve` tree, sampled during case 1's load
and while case 2's largest PR was planned. The tree's total is the peak of its summed PSS (shared pages
split between the processes sharing them), which is what the host really gives the tree."""
from __future__ import annotations

from typing import Any

from bench.proctree import TreePeaks
from bench.report import CaseResult

ROLES_UNDER_LOAD = ("web master", "web worker", "supervisor", "rq worker", "redis")
ROLES_PLANNING = ("work horse", "terraform")


IDLE_TARGET_MIB = 300


def run(intake: dict[str, Any] | None, planning: dict[str, Any] | None) -> CaseResult:
    case = CaseResult("memory", "7 memory")
    details: dict[str, Any] = {}
    if intake:
        idle: TreePeaks = intake["idle"]
        idle_mib = round(idle.total_pss_kb / 1024)
        case.add(f"idle: whole serve tree (sum of PSS), workers {intake['workers']}", idle_mib, "MiB",
                 target=f"<= {IDLE_TARGET_MIB} MiB", met=idle_mib <= IDLE_TARGET_MIB,
                 note="; ".join(f"{role} {v['processes']}x" for role, v in sorted(idle.by_role().items())))
        details["idle"] = {"roles": idle.by_role(), "pss_by_role_mib": idle.pss_by_role(),
                           "total_pss_mib": idle_mib}
        peaks: TreePeaks = intake["peaks"]
        roles = peaks.by_role()
        for role in ROLES_UNDER_LOAD:
            if role in roles:
                case.add(f"under case 1: {role} peak RSS", roles[role]["peak_mib"], "MiB",
                         note=f"{roles[role]['processes']} process(es)")
        case.add("under case 1: whole serve tree (sum of PSS)", round(peaks.total_pss_kb / 1024), "MiB")
        details["under_intake"] = {"roles": roles, "total_pss_mib": round(peaks.total_pss_kb / 1024),
                                   "load": intake["label"]}
    if planning:
        peaks = planning["peaks"]
        roles = peaks.by_role()
        n = planning["resources"]
        raw_mib = round(planning["raw_plan_peak_kb"] / 1024)
        for role in ROLES_PLANNING:
            if role not in roles:
                continue
            if role == "terraform":
                case.add(f"planning {n:,} resources: terraform peak RSS (sampled)", roles[role]["peak_mib"], "MiB",
                         baseline=raw_mib, baseline_label="raw plan, exact",
                         note="read every 0.1 s: a lower bound; the raw plan's peak comes from the kernel")
            else:
                case.add(f"planning {n:,} resources: {role} peak RSS", roles[role]["peak_mib"], "MiB")
        case.add(f"planning {n:,} resources: whole serve tree (sum of PSS)", round(peaks.total_pss_kb / 1024), "MiB")
        details["planning"] = {"roles": roles, "total_pss_mib": round(peaks.total_pss_kb / 1024), "resources": n,
                               "raw_terraform_plan_peak_mib": raw_mib}
    case.details = details
    return case
