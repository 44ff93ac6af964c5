"""`GET /metrics` in Prometheus' text format, and the hooks that time and count webhook deliveries."""
from __future__ import annotations

from typing import TYPE_CHECKING
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST

from bot.state.metrics import Metrics

if TYPE_CHECKING:
    from bot.services import WebServices

bp = Blueprint("metrics", __name__)
WEBHOOK_ENDPOINT = "events.receive_event"


@bp.get("/metrics")
def metrics():  # type: ignore[no-untyped-def]
    # content_type, not mimetype: Flask would append a second "; charset=utf-8".
    return Response(current_app.extensions["tfbot_metrics"].exposition(), content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask, services: WebServices) -> None:
    """Create the app's metrics and count every answer of `POST /events` (the view names its outcome in g)."""
    app.extensions["tfbot_metrics"] = Metrics(services)

    @app.before_request
    def _start_timer() -> None:
        if request.endpoint == WEBHOOK_ENDPOINT:
            g.webhook_started = time.perf_counter()

    @app.after_request
    def _count_webhook(response: Response) -> Response:
        started = g.get("webhook_started")
        if started is not None:
            outcome = g.get("webhook_outcome") or ("error" if response.status_code >= 500 else "other")
            app.extensions["tfbot_metrics"].observe_webhook(
                request.headers.get("X-GitHub-Event"), outcome, time.perf_counter() - started)
        return response
