"""`tfbot serve`: one supervisor process that owns the embedded Redis (when `redis_url` is empty), the web
process (gunicorn) and `workers` worker processes, restarts any that dies, and stops them all cleanly.

The web server runs in a child process rather than in the supervisor because gunicorn's master reaps every
child it has (SIGCHLD), which would hide how a worker died.

Stopping (SIGTERM, or Ctrl-C) goes in this order, so that no run is lost and no process outlives serve:
1. workers stop taking jobs (RQ's warm shutdown) and finish what they run;
2. after `shutdown_grace` seconds, runs still going are recorded as interrupted (their PRs are told at the
   next start) and every process under each worker, Terraform included, is signalled, then killed;
3. the web server drains and stops;
4. the embedded Redis saves and stops, last, so that everything above reached it.
A second SIGTERM or Ctrl-C skips what is left of the grace.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

from bot.config import Config
from bot.ops.logs import setup_logging
from bot.ops.preflight import check_git
from bot.adapters.procs import alive, become_subreaper, children_of, descendants, reap_orphans, signal_all, stop_with_parent
from bot.adapters.redis_server import EmbeddedRedis, EmbeddedRedisError
from bot.web.server import EXIT_CANNOT_BIND, port_problem

log = logging.getLogger("tfbot.serve")
RESTART_BACKOFF_MAX = 30.0
KILL_GRACE = 10.0  # seconds between SIGTERM and SIGKILL for what is left once the grace is over


def serve(config: Config) -> int:
    """Run until SIGTERM/SIGINT; return the process exit code."""
    setup_logging(config.log_level, config.secrets(), "serve", config.log_format)
    problem = port_problem(config)
    if problem:  # fatal: never start Redis and workers behind a web server that cannot listen
        log.error("%s", problem)
        return 2
    git = check_git()
    if not git.ok:
        log.error("git: %s", git.error)
        return 2
    config.data_dir.mkdir(parents=True, exist_ok=True)
    become_subreaper()  # a process orphaned under us (a work horse's child) is ours to find and stop
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
    hurry = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        (hurry if stop.is_set() else stop).set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    web = Child("web", config, redis_url)
    workers = [Child("worker", config, redis_url) for _ in range(config.workers)]
    code = 0
    try:
        for child in (web, *workers):
            child.start()
        base = f"http://{config.server.host}:{config.server.port}"
        log.info("tfbot serving on %s: webhooks %s/events, locks %s/locks, health %s/healthz; %d worker(s); "
                 "GitHub API %s", base, base, base, base, config.workers, config.github.api_url)
        # Webhooks GitHub could not deliver while tfbot was down are asked for again; stale locks reconciled.
        from bot.ops.recovery import start_recovery

        start_recovery(config, redis_url, stop)
        while not stop.wait(1.0):
            if web.exit_code() == EXIT_CANNOT_BIND:
                log.error("%s", port_problem(config) or f"server.port {config.server.port} cannot be bound "
                          "(TFBOT_SERVER_PORT)")
                code = 2
                break
            for child in (web, *workers):
                child.restart_if_dead()
            reap_orphans({c.pid for c in (web, *workers) if c.pid}
                         | ({embedded.pid} if embedded and embedded.pid else set()))
    finally:
        log.info("stopping: workers finish their runs (up to %.0f s), then the web server, then Redis",
                 config.shutdown_grace)
        stop_workers(workers, config, redis_url, hurry)
        web.stop(KILL_GRACE * 2)
        if embedded:
            embedded.stop()
        reap_orphans(set())
        leftovers = descendants(os.getpid())
        if leftovers:
            log.warning("killing %d process(es) still running under tfbot serve: %s", len(leftovers), leftovers)
            signal_all(leftovers, signal.SIGKILL)
        reap_orphans(set())
        log.info("stopped")
    return code


def stop_workers(workers: list["Child"], config: Config, redis_url: str, hurry: threading.Event) -> None:
    """Warm-stop the workers, wait for their runs up to shutdown_grace, then interrupt what still runs."""
    for child in workers:
        child.signal(signal.SIGTERM)
    deadline = time.monotonic() + config.shutdown_grace
    while any(c.running() for c in workers) and time.monotonic() < deadline and not hurry.is_set():
        hurry.wait(0.2)
    busy = [c for c in workers if c.running()]
    if not busy:
        return
    why = ("tfbot was asked to stop at once" if hurry.is_set()
           else f"tfbot was stopping and the run did not finish within shutdown_grace ({config.shutdown_grace:.0f} s)")
    record_interrupted(redis_url, [c.pid for c in busy if c.pid], why)
    for child in busy:
        interrupt_runs(child, why)
    for child in busy:
        # Already asked to stop: a second SIGTERM would be RQ's cold shutdown, which skips recording the
        # failed job. It exits by itself once it has.
        child.stop(KILL_GRACE, ask=False)


def interrupt_runs(child: "Child", why: str) -> None:
    """Stop the run of a busy worker: its work horse gets SIGTERM, Terraform under it one SIGTERM too.

    Terraform gets that SIGTERM from Linux when the horse dies (it is started with stop_with_parent), so it
    stops gracefully, writes its state and releases its state lock; signalling it as well would be a second
    interrupt, which makes Terraform exit at once. Whatever is still alive of the worker's tree after
    KILL_GRACE (a provisioner's child, a `run` step's) is killed.
    """
    if child.pid is None:
        return
    tree = descendants(child.pid)
    horses = children_of(child.pid)  # the work horse (and RQ's scheduler)
    commands = [pid for horse in horses for pid in children_of(horse)]  # Terraform, a `run` step
    log.warning("worker %d: interrupting its run (%d process(es)): %s", child.pid, len(tree), why)
    signal_all(horses, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE
    while time.monotonic() < deadline and any(alive(pid) for pid in commands):
        time.sleep(0.1)
    # Terraform is done (or out of time): what is left of the run, such as a provisioner's child, goes now.
    signal_all([pid for pid in tree if alive(pid)], signal.SIGKILL)


def record_interrupted(redis_url: str, worker_pids: list[int], reason: str) -> None:
    """Queue the interrupted-run report of every project run these worker processes are running."""
    import socket

    from rq import Worker
    from rq.serializers import JSONSerializer

    from bot.jobs import queue_interrupted_report
    from bot.adapters.redis_server import connect

    try:
        conn = connect(redis_url)
        host = socket.gethostname()
        for worker in Worker.all(connection=conn, serializer=JSONSerializer):
            if worker.pid not in worker_pids or worker.hostname != host:
                continue
            job = worker.get_current_job()
            if job is not None and job.func_name == "bot.jobs.run_project":
                log.warning("recording run job %s as interrupted: %s", job.id, reason)
                queue_interrupted_report(conn, job, reason)
    except Exception:  # noqa: BLE001 - the heartbeat reaper still reports the run at the next start
        log.exception("could not record the interrupted runs; they are reported when their heartbeat expires")


class Child:
    """One supervised `python -m bot <command>` process."""

    def __init__(self, command: str, config: Config, redis_url: str):
        self.command = command
        self.config = config
        self.env = {**os.environ, "TFBOT_REDIS_URL": redis_url}
        self.proc: subprocess.Popen[bytes] | None = None
        self.failures = 0
        self.next_start = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        argv = [sys.executable, "-m", "bot", self.command, "--config", str(self.config.source)]
        # Own session: a Ctrl-C reaches only the supervisor, which stops children once, in order.
        self.proc = subprocess.Popen(argv, env=self.env, start_new_session=True, preexec_fn=stop_with_parent)
        self.started = time.monotonic()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

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

    def signal(self, signum: int) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signum)

    def stop(self, grace: float, ask: bool = True) -> None:
        """SIGTERM (gunicorn drains requests; a worker finishes its job), then SIGKILL of its whole tree."""
        if self.proc is None:
            return
        if ask:
            self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            tree = descendants(self.proc.pid)
            log.warning("%s process %d did not stop within %.0fs; killing it and %d process(es) under it",
                        self.command, self.proc.pid, grace, len(tree))
            signal_all([*tree, self.proc.pid], signal.SIGKILL)
            self.proc.wait()
