"""RQ job entry points. A worker process sets its services once; each job looks them up here."""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from bot import keys
from bot.webhooks import Delivery

log = logging.getLogger(__name__)
_services: Any = None
RECENT_DELIVERIES = 1000


def set_services(services: Any) -> None:
    """Called once by `tfbot worker` before it starts taking jobs."""
    global _services
    _services = services


def services() -> Any:
    if _services is None:
        raise RuntimeError("tfbot job run outside a tfbot worker: services were not set")
    return _services


def handle_delivery(delivery_id: str, event: str, payload: dict[str, Any]) -> int:
    """Route one webhook delivery to its handlers; return how many ran."""
    from bot.handlers import router

    svc = services()
    delivery = Delivery(id=delivery_id, event=event, payload=payload)
    log.info("processing %s", delivery.describe())
    record = json.dumps({"delivery": delivery_id, "event": event, "action": delivery.action, "repo": delivery.repo,
                         "at": time.time()})
    pipe = svc.redis.pipeline()
    pipe.lpush(keys.recent_deliveries(), record)
    pipe.ltrim(keys.recent_deliveries(), 0, RECENT_DELIVERIES - 1)
    pipe.execute()
    return router.dispatch(delivery, svc)


def run_project(command_id: str, project: dict[str, Any]) -> str:
    """Run one project of a command; the job that completes the command reports it on the PR."""
    from bot.records import project_from_dict
    from bot.reporting import finish_command
    from bot.runner import run_project as run

    svc = services()
    cmd = svc.records.command(command_id)
    result = run(svc, cmd, project_from_dict(project))
    if svc.records.add_result(cmd.id, result):
        finish_command(svc, cmd)
    return result.outcome.value


def plan_waiter(project: dict[str, Any], pull: int, installation: int, reason: str) -> None:
    """A PR that waited in line now holds the lock: plan it on its current head."""
    from bot.handlers.pull_requests import plan_handed_over

    plan_handed_over(services(), project, pull, installation, reason)
