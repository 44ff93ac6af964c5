"""Sending one queued notification to its receiver, in a worker's job (bot/jobs.py `send_notification`)."""
from __future__ import annotations

import logging
from typing import Any

from bot.adapters.http_post import DeliveryError, post
from bot.notify.bodies import request_for
from bot.notify.notices import Notice, describe_receiver, receiver_id
from bot.notify.emit import NotifyServices
from bot.state import notified

log = logging.getLogger(__name__)


def deliver(svc: NotifyServices, index: int, receiver: str, notice_data: dict[str, Any], delivery: str, *,
            last_try: bool) -> str:
    """POST the notice to receiver `index` of the config; returns `sent`, `failed` (the last try failed) or
    `dropped` (the config no longer has that receiver there: `receiver` is its receiver_id when queued).

    Raises DeliveryError when the receiver did not take it and tries remain, so RQ tries again (bot.queue
    notify_retry). The receiver is named by index and kind in every log line, never by its URL.
    """
    notice = Notice.from_dict(notice_data)
    receivers = svc.config.notifications
    entry = receivers[index] if 0 <= index < len(receivers) else None
    if entry is None or receiver_id(entry) != receiver:
        log.warning("%s notification %s of %s dropped: notifications[%d] is not the receiver it was queued for "
                    "(the config changed)", notice.event, delivery, notice.repo, index)
        notified.count(svc.redis, entry.kind if entry else "unknown", notice.event, "dropped")
        return "dropped"
    name = describe_receiver(index, entry)
    request = request_for(entry.kind, entry.secret, notice, delivery)
    try:
        post(entry.url, request.body, request.headers)
    except DeliveryError as exc:
        if not last_try:
            raise  # the worker writes one WARNING line per try (bot.jobs QUIET_RETRIES)
        log.error("%s notification %s of %s to %s failed on its last try: %s; it is not sent", notice.event,
                  delivery, notice.repo, name, exc)
        notified.count(svc.redis, entry.kind, notice.event, "failed")
        return "failed"
    log.info("%s notification %s of %s sent to %s", notice.event, delivery, notice.repo, name)
    notified.count(svc.redis, entry.kind, notice.event, "sent")
    return "sent"
