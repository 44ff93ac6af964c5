"""`POST /events`: verify, de-duplicate and enqueue a GitHub delivery. Never runs git or Terraform."""
from __future__ import annotations

import logging

import redis
from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from bot.intake.webhooks import HANDLED_EVENTS, RawJSON, WebhookRejected, is_handled, parse_delivery

log = logging.getLogger(__name__)
bp = Blueprint("events", __name__)


@bp.post("/events")
def receive_event():  # type: ignore[no-untyped-def]
    services = current_app.extensions["tfbot"]
    config = services.config
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return _answer(413, "body larger than the 25 MB GitHub sends at most", "too_large")
    try:
        delivery = parse_delivery(request.headers, body, config.github.webhook_secret)
    except WebhookRejected as exc:
        log.warning("rejected webhook from %s: %s", request.remote_addr, exc.reason)
        return _answer(exc.status, exc.reason, "rejected")
    if delivery.event == "ping":
        log.info("ping from GitHub (hook %s)", delivery.payload.get("hook_id"))
        return _answer(200, "pong", "ping")
    if delivery.event not in HANDLED_EVENTS:
        return _answer(202, f"event {delivery.event!r} is not handled; ignored", "ignored")
    if not is_handled(delivery):
        return _answer(202, f"action {delivery.action!r} of {delivery.event!r} is not handled; ignored", "ignored")
    if delivery.repo and config.repo_config(delivery.repo) is None:
        log.info("ignored %s: repository not in config.repos", delivery.describe())
        return _answer(202, f"repository {delivery.repo} is not configured; ignored", "ignored")
    payload = RawJSON.of(body, delivery.payload)  # the job holds the body as received: no second encoding
    try:
        # One round trip: the delivery id's SET NX and the job's writes, the latter only when the id is new.
        first = services.deliveries.take_once(delivery.id, lambda pipe: services.jobs.handle_delivery(
            delivery.id, delivery.event, payload, pipeline=pipe))
    except (redis.RedisError, OSError) as exc:
        log.error("Redis unavailable, answering 503 for %s: %s", delivery.describe(), exc)
        return _answer(503, "queue unavailable; GitHub can redeliver this event", "unavailable")
    if not first:
        log.info("duplicate %s acknowledged, not processed again", delivery.describe())
        return _answer(200, "duplicate delivery; already processed", "duplicate")
    log.info("queued %s", delivery.describe())
    return _answer(202, "queued", "queued")


def _answer(status: int, message: str, outcome: str):  # type: ignore[no-untyped-def]
    g.webhook_outcome = outcome  # counted by bot.web.metrics
    return jsonify({"status": status, "message": message}), status
