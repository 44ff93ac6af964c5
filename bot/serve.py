"""`tfbot serve`: the embedded Redis (if no redis_url), supervised worker processes, and gunicorn."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from bot.config import Config
from bot.logs import setup_logging
from bot.preflight import check_terraform
from bot.redis_server import EmbeddedRedis, EmbeddedRedisError, connect

log = logging.getLogger("tfbot.serve")


def serve(config: Config) -> int:
    """Run until SIGTERM/SIGINT; return the process exit code."""
    setup_logging(config.log_level, config.secrets(), "serve")
    check = check_terraform(config.terraform.binary, config.data_dir)
    if not check.ok:
        log.error("terraform.binary: %s", check.error)
        return 2
    config.data_dir.mkdir(parents=True, exist_ok=True)
    embedded: EmbeddedRedis | None = None
    redis_url = config.redis_url
    if not redis_url:
        embedded = EmbeddedRedis(config.data_dir)
        try:
            redis_url = embedded.start()
        except EmbeddedRedisError as exc:
            log.error("redis_url is empty and the embedded Redis cannot start: %s", exc)
            return 2
    workers = WorkerSupervisor(config, redis_url)
    try:
        workers.start()
        _run_gunicorn(config, redis_url, check)
    finally:
        workers.stop()
        if embedded:
            embedded.stop()
    return 0


class WorkerSupervisor:
    """Keeps `config.workers` `tfbot worker` processes alive; restarts one that dies."""

    def __init__(self, config: Config, redis_url: str):
        self.config = config
        self.env = {**os.environ, "TFBOT_REDIS_URL": redis_url}
        self.procs: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def _spawn(self) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "bot", "worker", "--config", str(self.config.source)]
        return subprocess.Popen(argv, env=self.env)

    def start(self) -> None:
        self.procs = [self._spawn() for _ in range(self.config.workers)]
        log.info("started %d worker process(es): pids %s", len(self.procs), [p.pid for p in self.procs])
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(2.0):
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None and not self._stopping.is_set():
                    log.error("worker pid %d exited with code %s; starting another", proc.pid, proc.returncode)
                    self.procs[i] = self._spawn()

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM lets a worker finish its current job (RQ warm shutdown); SIGKILL after `grace` seconds."""
        self._stopping.set()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop within %.0fs; killing it", proc.pid, grace)
                proc.kill()
                proc.wait()


def _run_gunicorn(config: Config, redis_url: str, check: Any) -> None:
    from gunicorn.app.base import BaseApplication

    from bot.app import create_app
    from bot.services import WebServices

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

        def load(self):  # type: ignore[no-untyped-def]
            services = WebServices(config=config, redis=connect(redis_url), terraform_check=check)
            return create_app(services)

    log.info(
        "tfbot listening on http://%s:%d/events (GitHub API %s)",
        config.server.host,
        config.server.port,
        config.github.api_url,
    )
    try:
        _App().run()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
