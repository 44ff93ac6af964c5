"""Event routing: handlers subscribe to (event, action) with a decorator; a delivery runs every match."""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Callable

from bot.intake.webhooks import Delivery

if TYPE_CHECKING:
    from bot.services import WorkerServices

log = logging.getLogger(__name__)
Handler = Callable[[Delivery, "WorkerServices"], None]


class Router:
    """Maps (event, action) to handlers; `action=None` subscribes to every action of the event."""

    def __init__(self, *others: "Router"):
        self._routes: dict[tuple[str, str | None], list[Handler]] = defaultdict(list)
        for other in others:
            for key, handlers in other._routes.items():
                self._routes[key].extend(handlers)

    def register(self, event: str, action: str | None = None) -> Callable[[Handler], Handler]:
        def decorator(func: Handler) -> Handler:
            self._routes[(event, action)].append(func)
            return func

        return decorator

    def handlers_for(self, event: str, action: str) -> list[Handler]:
        return [*self._routes.get((event, None), []), *self._routes.get((event, action), [])]

    def dispatch(self, delivery: Delivery, services: WorkerServices) -> int:
        """Run every handler for the delivery; return how many ran."""
        handlers = self.handlers_for(delivery.event, delivery.action)
        if not handlers:
            log.info("no handler for %s; nothing to do", delivery.describe())
        for handler in handlers:
            handler(delivery, services)
        return len(handlers)
