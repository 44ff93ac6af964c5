"""The Flask application factory: HTTP only. Everything slow happens in workers."""
from __future__ import annotations

from flask import Flask

from bot.services import WebServices
from bot.web import events, health


def create_app(services: WebServices) -> Flask:
    """Build the web app around already-constructed services (config, Redis, queue)."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = services.config.server.max_body_bytes
    app.extensions["tfbot"] = services
    app.register_blueprint(events.bp)
    app.register_blueprint(health.bp)
    return app
