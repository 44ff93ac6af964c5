"""The web process of `tfbot serve`: gunicorn (a production WSGI server) around the Flask app."""
from __future__ import annotations

import logging

from bot.config import Config
from bot.logs import setup_logging
from bot.preflight import check_terraform
from bot.redis_server import connect

log = logging.getLogger("tfbot.web")


def run_web(config: Config, redis_url: str) -> int:
    from gunicorn.app.base import BaseApplication

    from bot.app import create_app
    from bot.services import WebServices

    setup_logging(config.log_level, config.secrets(), "web")
    check = check_terraform(config.terraform.binary, config.data_dir)

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{config.server.host}:{config.server.port}")
            # Threads, not processes: intake is I/O-bound (one Redis round trip) and must answer in milliseconds.
            self.cfg.set("workers", 1)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", 16)
            self.cfg.set("timeout", 60)
            self.cfg.set("graceful_timeout", 20)
            self.cfg.set("accesslog", None)
            self.cfg.set("proc_name", "tfbot-web")
            # gunicorn 23+ opens a control socket in $HOME; several servers per user must not share one.
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self):  # type: ignore[no-untyped-def]
            return create_app(WebServices(config=config, redis=connect(redis_url), terraform_check=check))

    try:
        _App().run()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    return 0
