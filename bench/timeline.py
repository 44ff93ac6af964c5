"""Where a PR's time went, read back from Redis after the fact: RQ's own timestamps of every job (enqueued,
started, ended) and tfbot's run records (when the project's run began and how long it took). Costs the
measured run nothing, and splits "opened -> comment" into intake, queue waits, jobs and Terraform."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.state import keys
from bot.state.records import Records


def _epoch(value: bytes | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.decode().replace("Z", "+00:00")).timestamp()


def jobs_since(conn: Any, since: float) -> list[dict[str, Any]]:
    """RQ jobs enqueued at or after `since` (epoch seconds): description, the three timestamps and the name of
    the worker that took it."""
    out = []
    for key in conn.scan_iter("rq:job:*", count=1000):
        fields = conn.hmget(key, "description", "enqueued_at", "started_at", "ended_at", "worker_name")
        if fields[0] is None:
            continue
        enqueued = _epoch(fields[1])
        if enqueued is None or enqueued < since - 0.001:
            continue
        out.append({"description": fields[0].decode(), "enqueued": enqueued, "started": _epoch(fields[2]),
                    "ended": _epoch(fields[3]), "worker": (fields[4] or b"").decode()})
    return sorted(out, key=lambda j: j["enqueued"])


def runs_since(conn: Any, since: float) -> list[dict[str, Any]]:
    """tfbot's run records (checkout + workflow steps + plan storage) that began at or after `since`."""
    records = Records(conn)
    out = []
    for raw in conn.lrange(keys.runs(), 0, 200):
        found = records.run(raw.decode())
        if found and found[0].get("started_at", 0) >= since:
            out.append(found[0])
    return out


def phases(conn: Any, sent: float, seen: float) -> dict[str, float]:
    """Seconds per phase of one PR along its critical path, from sending `opened` (`sent`) to seeing the
    comment (`seen`); the phases add up to the whole, and the last, parenthesised figure is a part of the
    project phase. A job queues the next one before it ends, so each phase runs until the next job is queued.
    With several projects, the project phase runs from the first project job's start until the last one
    queues the report. Empty when a job of the PR cannot be found."""
    jobs = jobs_since(conn, sent)
    delivery = [j for j in jobs if j["description"].startswith("pull_request delivery")]
    plans = [j for j in jobs if j["description"].startswith("plan ")]
    reports = [j for j in jobs if j["description"].startswith("report command")]
    if not (delivery and plans and reports) or any(j["started"] is None for j in delivery + plans + reports):
        return {}
    d, r = delivery[0], reports[-1]
    queued = min(j["enqueued"] for j in plans)
    first = min(j["started"] for j in plans)
    runs = runs_since(conn, sent)
    longest = max(runs, key=lambda run: run["duration"], default={})
    # Each step of that run (a run record's `steps`: command, seconds), the same command's times added up.
    steps: dict[str, float] = {}
    for command, seconds in longest.get("steps", []):
        steps[f"(inside it: {command})"] = steps.get(f"(inside it: {command})", 0.0) + float(seconds)
    return {
        "intake: webhook answered, delivery queued": d["enqueued"] - sent,
        "delivery job waits for a worker": d["started"] - d["enqueued"],
        "delivery job: fork, GitHub, git fetch, detect": queued - d["started"],
        "project job waits for a worker": first - queued,
        "project job(s): lock, checkout, terraform, store": r["enqueued"] - first,
        "report job waits for a worker": r["started"] - r["enqueued"],
        "report job: render, post comment": seen - r["started"],
        "(inside project jobs: longest run record)": max((run["duration"] for run in runs), default=float("nan")),
        **steps,
    }


def busy_seconds(intervals: list[tuple[float, float]], start: float, end: float) -> dict[int, float]:
    """Pure: seconds of [start, end] during which exactly k of `intervals` (start, end) overlap, for every k seen
    (k = 0 is the time none runs). The values add up to end - start."""
    edges = sorted({start, end, *(min(max(t, start), end) for pair in intervals for t in pair)})
    out: dict[int, float] = {}
    for left, right in zip(edges, edges[1:]):
        middle = (left + right) / 2
        k = sum(1 for a, b in intervals if a <= middle < b)
        out[k] = out.get(k, 0.0) + right - left
    return dict(sorted(out.items()))


def project_jobs(conn: Any, sent: float) -> dict[str, Any]:
    """How a PR's project jobs shared the workers, from the first project job queued to the report queued:
    seconds with 0, 1, 2... project jobs running at once; per worker, the seconds between the end of one of its
    jobs and the start of its next (RQ's own bookkeeping and the fork of a work horse: `started_at` is set inside
    the horse); and the job seconds added up, split into what the run records hold (checkout, Terraform, plan
    storage; each Terraform command's seconds added up) and the rest of the job (check run, lock, result).
    Empty when a job of the PR cannot be found."""
    jobs = jobs_since(conn, sent)
    plans = [j for j in jobs if j["description"].startswith("plan ")]
    reports = [j for j in jobs if j["description"].startswith("report command")]
    if not plans or not reports or any(j["started"] is None or j["ended"] is None for j in plans):
        return {}
    begin, end = min(j["enqueued"] for j in plans), reports[-1]["enqueued"]
    per_worker: dict[str, list[dict[str, Any]]] = {}
    for job in sorted(plans, key=lambda j: j["started"]):
        per_worker.setdefault(job["worker"], []).append(job)
    gaps = {name: [round(b["started"] - a["ended"], 3) for a, b in zip(mine, mine[1:])]
            for name, mine in per_worker.items()}
    runs = runs_since(conn, sent)
    steps: dict[str, float] = {}
    for run in runs:
        for command, seconds in run.get("steps", []):
            steps[command] = steps.get(command, 0.0) + float(seconds)
    job_seconds = sum(j["ended"] - j["started"] for j in plans)
    run_seconds = sum(float(run["duration"]) for run in runs)
    return {
        "window_seconds": end - begin,
        "seconds_with_k_jobs_running": busy_seconds([(j["started"], j["ended"]) for j in plans], begin, end),
        "jobs_per_worker": {name: len(mine) for name, mine in per_worker.items()},
        "gaps_between_jobs_per_worker": gaps,
        "first_start_after_queued": [round(j["started"] - begin, 3) for j in sorted(plans, key=lambda j: j["started"])],
        "job_seconds_total": job_seconds,
        "run_record_seconds_total": run_seconds,
        "terraform_seconds_total": steps,
        "job_minus_run_record_seconds_total": job_seconds - run_seconds,
        "run_record_minus_terraform_seconds_total": run_seconds - sum(steps.values()),
    }
