"""Error answers: JSON under /api and /events, a small page elsewhere; a Redis outage is a 503, not a crash."""
from __future__ import annotations

import logging

import redis
from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/events", "/metrics", "/healthz"))


def _answer(status: int, title: str, message: str):  # type: ignore[no-untyped-def]
    if _wants_json():
        return jsonify({"status": status, "message": message}), status
    from bot.web.auth import current_admin

    return render_template("web/error.html", status=status, title=title, message=message,
                           admin=current_admin(), here=request.full_path.rstrip("?")), status


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        answer = _answer(exc.code or 500, exc.name, exc.description or exc.name)
        retry_after = getattr(exc, "retry_after", None)  # a 429 or 503 that says when to try again
        return (*answer, {"Retry-After": str(retry_after)}) if retry_after else answer

    @app.errorhandler(redis.RedisError)
    def redis_down(exc: redis.RedisError):  # type: ignore[no-untyped-def]
        log.error("Redis unavailable while serving %s: %s", request.path, exc)
        return _answer(503, "Redis unavailable", "tfbot cannot reach its Redis right now; try again in a moment.")
