"""The web process of `tfbot serve`: gunicorn (a production WSGI server) around the Flask app."""
from __future__ import annotations

import errno
import logging
import os
import socket
from typing import TYPE_CHECKING, Callable

from bot.config import Config
from bot.adapters.logs import setup_logging

if TYPE_CHECKING:
    from bot.services import WebServices

log = logging.getLogger("tfbot.web")
# The web process's exit code when it cannot bind: `tfbot serve` then stops instead of restarting it.
EXIT_CANNOT_BIND = 3
THREADS_PER_PROCESS = 8


def process_count(config: Config) -> int:
    """How many gunicorn worker processes serve the app: `server.processes`, or one per core."""
    return config.server.processes or os.cpu_count() or 1


def port_problem(config: Config) -> str | None:
    """Why server.host:server.port cannot be bound now, as a config problem line; None when it can."""
    host, port = config.server.host, config.server.port
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"server.host {host!r} cannot be resolved (TFBOT_SERVER_HOST): {exc.strerror}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"server.port {port} is in use (TFBOT_SERVER_PORT): stop what listens there or pick another port"
            if exc.errno == errno.EACCES:
                return f"server.port {port} needs privileges to bind (TFBOT_SERVER_PORT): use a port above 1023"
            return f"server.host {host} cannot be bound (TFBOT_SERVER_HOST): {exc.strerror}"
    return None


def run_web(config: Config, services: Callable[[], WebServices]) -> int:
    """Serve the web app until stopped; `services` builds the app's services (bot/compose.py) once logging is set up."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.glogging import Logger

    class _Logs(Logger):
        """gunicorn's own lines go through tfbot's handler: same format (text or json), secrets masked."""

        def setup(self, cfg):  # type: ignore[no-untyped-def]
            super().setup(cfg)
            self.error_log.handlers[:] = []
            self.error_log.propagate = True

    from bot.web.app import create_app

    setup_logging(config.log_level, config.secrets(), "web", config.log_format)
    problem = port_problem(config)
    if problem:
        log.error("%s", problem)
        return EXIT_CANNOT_BIND

    processes = process_count(config)
    if processes > 1:
        from bot.state.metrics import process_exited, use_multiprocess

        # Before the app (and prometheus_client's counters) exist: every worker counts into these files.
        use_multiprocess(config.data_dir / "prometheus-web")

        def child_exit(server, worker):  # type: ignore[no-untyped-def]
            process_exited(worker.pid)

    class _App(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{config.server.host}:{config.server.port}")
            # A process per core: intake's work per delivery (HMAC, JSON, RQ's job) is Python holding the GIL, so
            # one process's threads take turns on one core; threads still overlap each one's Redis round trip.
            self.cfg.set("workers", processes)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", THREADS_PER_PROCESS)
            # The app is built once in the master and forked: the workers share its pages, and one secret key.
            self.cfg.set("preload_app", True)
            if processes > 1:
                self.cfg.set("child_exit", child_exit)
            self.cfg.set("timeout", 60)
            self.cfg.set("graceful_timeout", 20)
            self.cfg.set("accesslog", None)
            self.cfg.set("logger_class", _Logs)
            self.cfg.set("proc_name", "tfbot-web")
            # gunicorn 23+ opens a control socket in $HOME; several servers per user must not share one.
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self):  # type: ignore[no-untyped-def]
            return create_app(services())

    try:
        _App().run()
    except SystemExit as exc:
        if exc.code not in (0, None):
            # gunicorn gives up binding after five tries: the port was taken after our check.
            return EXIT_CANNOT_BIND if port_problem(config) else int(exc.code) if isinstance(exc.code, int) else 1
    return 0
