"""`tfbot serve`: one supervisor process that owns the embedded Redis (when `redis_url` is empty), the web
process (gunicorn) and `workers` worker processes, restarts any that dies, and stops them all cleanly.

The web server runs in a child process rather than in the supervisor because gunicorn's master reaps every
child it has (SIGCHLD), which would hide how a worker died.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from bot.config import Config
from bot.logs import setup_logging
from bot.preflight import check_git, check_terraform
from bot.procs import stop_with_parent
from bot.redis_server import EmbeddedRedis, EmbeddedRedisError

log = logging.getLogger("tfbot.serve")
RESTART_BACKOFF_MAX = 30.0


def serve(config: Config) -> int:
    """Run until SIGTERM/SIGINT; return the process exit code."""
    setup_logging(config.log_level, config.secrets(), "serve")
    check = check_terraform(config.terraform.binary, config.data_dir)
    if not check.ok:
        log.error("terraform.binary: %s", check.error)
        return 2
    git = check_git()
    if not git.ok:
        log.error("git: %s", git.error)
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
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    children = [Child("web", config, redis_url)] + [Child("worker", config, redis_url) for _ in range(config.workers)]
    try:
        for child in children:
            child.start()
        log.info("tfbot serving on http://%s:%d/events with %d worker(s); GitHub API %s", config.server.host,
                 config.server.port, config.workers, config.github.api_url)
        # Webhooks GitHub could not deliver while tfbot was down are asked for again; stale locks reconciled.
        from bot.recovery import start_recovery

        start_recovery(config, redis_url, stop)
        while not stop.wait(1.0):
            for child in children:
                child.restart_if_dead()
    finally:
        log.info("stopping: web and workers finish what they are doing")
        for child in children:
            child.terminate()
        for child in children:
            child.wait()
        if embedded:
            embedded.stop()
    return 0


class Child:
    """One supervised `python -m bot <command>` process."""

    def __init__(self, command: str, config: Config, redis_url: str):
        self.command = command
        self.config = config
        self.env = {**os.environ, "TFBOT_REDIS_URL": redis_url}
        self.proc: subprocess.Popen[bytes] | None = None
        self.failures = 0
        self.next_start = 0.0

    def start(self) -> None:
        argv = [sys.executable, "-m", "bot", self.command, "--config", str(self.config.source)]
        # Own session: a Ctrl-C reaches only the supervisor, which stops children once, in order.
        self.proc = subprocess.Popen(argv, env=self.env, start_new_session=True, preexec_fn=stop_with_parent)
        self.started = time.monotonic()

    def restart_if_dead(self) -> None:
        if self.proc is None or self.proc.poll() is None:
            return
        code = self.proc.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        if time.monotonic() - self.started > 60:
            self.failures = 0
        delay = min(RESTART_BACKOFF_MAX, 2.0 ** self.failures)
        if self.next_start == 0.0:
            log.error("%s process %d %s; starting another in %.0fs", self.command, self.proc.pid, how, delay)
            self.next_start = time.monotonic() + delay
        if time.monotonic() >= self.next_start:
            self.failures += 1
            self.next_start = 0.0
            self.start()

    def terminate(self) -> None:
        """SIGTERM: gunicorn drains requests; an RQ worker finishes its current job (warm shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, grace: float = 30.0) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log.warning("%s process %d did not stop within %.0fs; killing it", self.command, self.proc.pid, grace)
            self.proc.kill()
            self.proc.wait()
