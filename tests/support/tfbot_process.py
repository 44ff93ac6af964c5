"""Run `tfbot serve` / `tfbot worker` as real subprocesses with a generated config, as a user would."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from bot.adapters.procs import stop_with_parent

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(directory: Path, settings: dict[str, Any]) -> Path:
    """Write a config.yaml from `settings` (the default workflow ships in the package)."""
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


class TfbotProcess:
    """One `tfbot COMMAND --config PATH` child process with its output captured to a file."""

    def __init__(self, command: str, config_path: Path, env: dict[str, str] | None = None, log_name: str | None = None):
        self.command = command
        self.config_path = config_path
        self.log_path = config_path.parent / (log_name or f"tfbot-{command}.log")
        # Event jobs retried twice, a second apart (in production: 8 times over 74 minutes).
        self.env = {"TFBOT_EVENT_RETRY_INTERVALS": "1,1", **os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "TfbotProcess":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", self.command, "--config", str(self.config_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.config_path.parent,
            # A test run killed (a timeout, Ctrl-C twice) must not leave tfbot servers running with nobody to stop
            # them: they stop as a stop signal asks, when the test's process dies.
            preexec_fn=stop_with_parent,
        )
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 40.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class TfbotServer(TfbotProcess):
    """`tfbot serve` on a free port; `start()` returns once /healthz answers (any status)."""

    def __init__(self, config_path: Path, port: int, env: dict[str, str] | None = None):
        super().__init__("serve", config_path, env)
        self.url = f"http://127.0.0.1:{port}"

    def start(self, timeout: float = 60.0) -> "TfbotServer":
        super().start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"tfbot serve exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                requests.get(self.url + "/healthz", timeout=2)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"tfbot serve did not answer within {timeout}s:\n{self.logs()}")

    def wait_healthy(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until /healthz says every part is fine (workers register a few seconds after start)."""
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            r = requests.get(self.url + "/healthz", timeout=5)
            body = r.json()
            if r.status_code == 200:
                return body
            time.sleep(0.2)
        raise AssertionError(f"never healthy: {body}\n{self.logs()}")

    def post_event(self, event: str, payload: dict[str, Any] | bytes, secret: str | None, delivery: str | None = None,
                   extra_headers: dict[str, str] | None = None) -> requests.Response:
        from tests.support.webhook_payloads import encode, headers

        body = payload if isinstance(payload, bytes) else encode(payload)
        h = headers(event, body, secret, delivery)
        h.update(extra_headers or {})
        return requests.post(self.url + "/events", data=body, headers=h, timeout=15)


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.1, message: str = "condition") -> Any:
    """Poll until `predicate()` is truthy; return its value. Timeouts only bound the wait, they assert nothing about speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
