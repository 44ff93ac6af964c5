"""The Flask application factory: HTTP only. Everything slow happens in workers."""
from __future__ import annotations

from flask import Flask

from bot.services import WebServices
from bot.web import api, auth, drift, errors, github_auth, health, locks, metrics, runs, security
from bot.intake import endpoint as events


def create_app(services: WebServices) -> Flask:
    """Build the web app around already-constructed services (config, Redis, queue)."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = services.config.server.max_body_bytes
    app.extensions["tfbot"] = services
    security.init_app(app, services.config)
    auth.init_app(app)
    github_auth.init_app(app)
    errors.init_app(app)
    metrics.init_app(app, services)
    app.register_blueprint(events.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(locks.bp)
    app.register_blueprint(runs.bp)
    app.register_blueprint(drift.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(github_auth.bp)
    app.register_blueprint(metrics.bp)
    return app
