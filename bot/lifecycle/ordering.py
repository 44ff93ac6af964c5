"""The order in which the projects of one apply run (pure): `depends_on` and `execution_order_group`.

Plans run in parallel. An apply, a merge's apply and a hand-over's apply run a project only after every project of
the same command it waits for has applied: those named in its `depends_on` and every project of a lower
`execution_order_group`. A project whose wait ended in anything but an apply (failed, refused, stale, locked, not
applied itself) is not applied: "not applied: <dependency> failed". A dependency that the command does not hold
(the PR did not change it) is not waited for. A repository that runs one project at a time (`parallel_plan` or
`parallel_apply` false) adds a second, weaker wait (`one_at_a_time`): each project starts after the one before it
in that order has ended, however it ended. `apply -p dns` alone is refused while the PR's own plan of a
project dns waits for is not applied (`held_back`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.models import Outcome, Project

# What lets the projects waiting for one go on: it applied, or there was nothing to apply.
APPLIED = frozenset({Outcome.APPLIED, Outcome.NOTHING_TO_APPLY})


def waits(projects: Sequence[Project]) -> dict[str, frozenset[str]]:
    """Project id -> ids of the projects of this command it runs after (empty: it may start at once)."""
    ids = {p.name: p.id for p in projects}
    out = {}
    for project in projects:
        before = {q.id for q in projects if q.execution_order_group < project.execution_order_group}
        before |= {ids[name] for name in project.depends_on if name in ids}
        out[project.id] = frozenset(before - {project.id})
    return out


def ordered(projects: Sequence[Project]) -> bool:
    """Whether any project of these waits for another (otherwise all run at once)."""
    return any(waits(projects).values())


def one_at_a_time(projects: Sequence[Project]) -> dict[str, frozenset[str]]:
    """Project id -> the id of the project that runs just before it when a command runs one project at a time (in
    the order of `stages`, by name within a stage); the first waits for nothing."""
    line = [p.id for stage in stages(projects) for p in stage]
    return {pid: frozenset(line[i - 1:i]) for i, pid in enumerate(line)}


def next_steps(order: Mapping[str, frozenset[str]], started: set[str], outcomes: Mapping[str, Outcome],
               after: Mapping[str, frozenset[str]] | None = None) -> tuple[list[str], dict[str, str]]:
    """(ids to start now, {id: id of the dependency that did not apply} to report as not applied).

    `order`: id -> ids that must apply first; `after`: id -> ids that must have ended first, however they ended
    (one at a time). `started`: ids already queued or reported; `outcomes`: the results so far. Each id is in one
    list at most.
    """
    ready, blocked = [], {}
    for project, before in sorted(order.items()):
        if project in started or project in outcomes:
            continue
        failed = sorted(b for b in before if b in outcomes and outcomes[b] not in APPLIED)
        if failed:
            blocked[project] = failed[0]
        elif all(b in outcomes for b in before | (after or {}).get(project, frozenset())):
            ready.append(project)
    return ready, blocked


def stages(projects: Sequence[Project]) -> list[list[Project]]:
    """The projects in the order they run: each stage after the ones before it (for the PR comment)."""
    order = waits(projects)
    by_id = {p.id: p for p in projects}
    done: set[str] = set()
    out = []
    while len(done) < len(by_id):
        stage = sorted((p for pid, p in by_id.items() if pid not in done and order[pid] <= done),
                       key=lambda p: p.name)
        if not stage:  # a cycle (config validation refuses them): the rest together, last
            stage = sorted((p for pid, p in by_id.items() if pid not in done), key=lambda p: p.name)
        out.append(stage)
        done |= {p.id for p in stage}
    return out


def describe(projects: Sequence[Project]) -> str:
    """`Applied in order: `network`, then `dns` and `app`.` ("" when nothing waits for anything)."""
    if not ordered(projects):
        return ""
    parts = [" and ".join(f"`{p.name}`" for p in stage) for stage in stages(projects)]
    return "Applied in order: " + ", then ".join(parts) + "; a project is applied only after what it depends on."


def held_back(chosen: Sequence[Project], held: Sequence[Project], applied: set[str]) -> dict[str, str]:
    """Project id -> why not, for each of `chosen` (an `apply -p ...`) that waits for a project of the same PR
    (`held`: the projects it holds locks of) that is neither chosen nor applied (`applied`: ids): applying it
    alone would apply it before what it depends on."""
    chosen_ids = {p.id for p in chosen}
    everything = list({p.id: p for p in (*held, *chosen)}.values())
    order, by_id = waits(everything), {p.id: p for p in everything}
    out = {}
    for project in chosen:
        missing = sorted(by_id[w].name for w in order[project.id] if w not in chosen_ids and w not in applied)
        if missing:
            names = ", ".join(f"`{n}`" for n in missing)
            out[project.id] = (f"`{project.name}` is applied after {names}, whose plan on this PR is not applied yet: "
                               f"apply {names} first, or comment `apply` without `-p` to apply them in order.")
    return out
