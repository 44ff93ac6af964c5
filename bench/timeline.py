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
    """RQ jobs enqueued at or after `since` (epoch seconds): description and the three timestamps."""
    out = []
    for key in conn.scan_iter("rq:job:*", count=1000):
        fields = conn.hmget(key, "description", "enqueued_at", "started_at", "ended_at")
        if fields[0] is None:
            continue
        enqueued = _epoch(fields[1])
        if enqueued is None or enqueued < since - 0.001:
            continue
        out.append({"description": fields[0].decode(), "enqueued": enqueued, "started": _epoch(fields[2]),
                    "ended": _epoch(fields[3])})
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
