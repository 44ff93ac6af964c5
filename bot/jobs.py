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
