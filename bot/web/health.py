"""`GET /healthz`: the state of Redis, the workers and Terraform, for load balancers and humans."""
from __future__ import annotations

import socket
import time

import redis
from flask import Blueprint, current_app, jsonify
from rq import Worker
from rq.worker import BaseWorker

from bot.state import github_health
from bot.state.change_records import ChangeStore
from bot.state.liveness import death_verdict
from bot.queue import EVENTS_QUEUE

THIS_HOST = socket.gethostname()

bp = Blueprint("health", __name__)


def _known_dead(worker: BaseWorker) -> bool:
    """A worker of this host whose process is gone (killed with its `tfbot serve`): RQ keeps its registration until
    it expires (minutes), but it takes no job."""
    return death_verdict({"hostname": worker.hostname or "", "pid": str(worker.pid or "")}, THIS_HOST) is not None


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    services = current_app.extensions["tfbot"]
    checks: dict[str, dict[str, object]] = {}
    try:
        services.redis.ping()
        checks["redis"] = {"ok": True}
    except (redis.RedisError, OSError) as exc:
        checks["redis"] = {"ok": False, "error": f"unreachable: {exc}"}
    if checks["redis"]["ok"]:
        try:
            workers = [w for w in Worker.all(connection=services.redis)
                       if EVENTS_QUEUE in w.queue_names() and not _known_dead(w)]
            checks["workers"] = {"ok": bool(workers), "count": len(workers)}
            if not workers:
                checks["workers"]["error"] = "no worker is listening: start `tfbot worker`"
        except (redis.RedisError, OSError) as exc:
            checks["workers"] = {"ok": False, "error": str(exc)}
    else:
        checks["workers"] = {"ok": False, "error": "unknown: Redis is unreachable"}
    checks["terraform"] = services.terraform_health()
    ok = all(c["ok"] for c in checks.values())
    body: dict[str, object] = {"ok": ok, "checks": checks}
    if checks["redis"]["ok"]:
        # Shown, never a failed check: GitHub being away must not take webhook intake out of a load balancer (the
        # deliveries wait in Redis). The web process never calls GitHub: the recovery pass records what it saw.
        try:
            body["github"] = github_health.read(services.redis)
        except (redis.RedisError, OSError, ValueError) as exc:
            body["github"] = {"ok": None, "error": f"unreadable: {exc}", "checked_seconds_ago": None}
    if services.config.change_records is not None and checks["redis"]["ok"]:
        # Shown, never a failed check: a queue tfbot cannot read must not take webhooks out of a load balancer.
        body["change_records"] = poller_health(services.redis, services.config.change_records.wait_seconds)
    return jsonify(body), 200 if ok else 503


def poller_health(conn: redis.Redis, wait_seconds: int) -> dict[str, object]:
    """The change-record pollers: `running` when one polled within two long polls and a margin; each poller's
    seconds since it last polled and its last error."""
    now = time.time()
    try:
        pollers = ChangeStore(conn).pollers()
    except (redis.RedisError, OSError, ValueError) as exc:
        return {"running": False, "error": f"unreadable: {exc}"}
    shown = {owner: {"last_poll_seconds_ago": round(now - float(p.get("at", 0)), 1), "error": p.get("error", "")}
             for owner, p in sorted(pollers.items())}
    fresh = [p for p in shown.values() if p["last_poll_seconds_ago"] <= 2 * wait_seconds + 30 and not p["error"]]
    return {"running": bool(fresh), "pollers": shown}
