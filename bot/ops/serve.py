"""`tfbot serve`: one supervisor process that owns the embedded Redis (when `redis_url` is empty), the web
process (gunicorn) and `workers` worker processes, restarts any that dies, and stops them all cleanly.

The web server runs in a child process rather than in the supervisor because gunicorn's master reaps every
child it has (SIGCHLD), which would hide how a worker died.

Stopping (SIGTERM, or Ctrl-C) goes in this order, so that no run is lost and no process outlives serve:
1. workers stop taking jobs (RQ's warm shutdown) and finish what they run;
2. after `shutdown_grace` seconds, runs still going are recorded as interrupted (their PRs are told at the
   next start, unless the run reports itself) and Terraform is asked to stop (SIGTERM); it gets
   `terraform_stop_grace` seconds to finish its in-flight operations and save its state, while the run
   reads its output and records its result; then whatever is left under each worker is killed;
3. the web server drains and stops;
4. the embedded Redis saves and stops, last, so that everything above reached it.
A second SIGTERM or Ctrl-C skips what is left of `shutdown_grace`, never Terraform's stop grace: cutting that
short loses state (`kill -9` is there for whoever accepts that).
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

from bot.config import Config
from bot.adapters.logs import setup_logging
from bot.adapters.preflight import check_git
from bot.adapters.procs import (
    become_subreaper, children_of, command_line, descendants, reap_orphans, signal_all, stop_with_parent,
)
from bot.adapters.redis_server import EmbeddedRedis, EmbeddedRedisError
from bot.ops.stop_signals import StopSignals
from bot.web.server import EXIT_CANNOT_BIND, port_problem

if TYPE_CHECKING:
    import redis
    from rq.job import Job

log = logging.getLogger("tfbot.serve")
RESTART_BACKOFF_MAX = 30.0
KILL_GRACE = 10.0  # seconds the web server has to drain after SIGTERM before it is killed
# Seconds a stopping serve waits for the change-record poller: its long poll (at most 20 s) and the message it records.
POLLER_STOP_GRACE = 30.0
# How long a job's record of why serve stopped its run is kept: the run reads it when Terraform has ended.
STOPPING_TTL_SECONDS = 24 * 3600


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
    stop = threading.Event()  # set by this thread, never by a signal handler (bot/ops/stop_signals.py)
    signals = StopSignals().install()
    poller: threading.Thread | None = None
    web = Child("web", config, redis_url)
    workers = [Child("worker", config, redis_url) for _ in range(config.workers)]
    code = 0
    try:
        for child in (web, *workers):
            child.start()
        base = f"http://{config.server.host}:{config.server.port}"
        announced = False
        # Webhooks GitHub could not deliver while tfbot was down are asked for again; stale locks reconciled.
        from bot.ops.recovery import start_recovery

        start_recovery(config, redis_url, stop)
        from bot.ops.lock_waits import start_lock_wait_watch

        start_lock_wait_watch(config, redis_url, stop)  # lock_waiting_long notifications, when a receiver wants them
        from bot.ops.change_poller import start_change_poller

        poller = start_change_poller(config, redis_url, stop)
        from bot.ops.drift_scheduler import start_drift_scheduler

        start_drift_scheduler(config, redis_url, stop)  # one host among all queues the scheduled drift checks
        while not signals.wait(0.2 if not announced else 1.0):
            if not announced and listening(config.server.host, config.server.port):
                # Said once the URLs answer, so a user who tries them at once is not refused.
                log.info("tfbot serving on %s: webhooks %s/events, locks %s/locks, drift %s/drift, health %s/healthz, "
                         "metrics %s/metrics; %d worker(s); GitHub API %s", base, base, base, base, base, base,
                         config.workers, config.github.api_url)
                announced = True
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
        stop.set()  # a failed start ends here without a signal: the background threads stop too
        # From here any signal (the second, or the first after a failed start) means "at once".
        stop_workers(workers, config, redis_url, signals, signals.count)
        if poller is not None:
            # Within one long poll; before Redis stops, so what it handles is counted.
            poller.join(POLLER_STOP_GRACE)
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
        signals.close()
    return code


def listening(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port (0.0.0.0 and :: are asked on loopback)."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((target, port), timeout=0.5):
            return True
    except OSError:
        return False


def stop_workers(workers: list["Child"], config: Config, redis_url: str, signals: StopSignals,
                 stopping_at: int) -> None:
    """Warm-stop the workers, wait for their runs up to shutdown_grace (cut short by a signal after the
    `stopping_at`-th), then ask what still runs to stop."""
    for child in workers:
        child.signal(signal.SIGTERM)
    deadline = time.monotonic() + config.shutdown_grace
    while any(c.running() for c in workers) and time.monotonic() < deadline and signals.count <= stopping_at:
        signals.wait(0.05)  # an idle worker exits within milliseconds: notice it, to stop the web server next
    busy = [c for c in workers if c.running()]
    if not busy:
        return
    why = ("tfbot was asked to stop at once" if signals.count > stopping_at
           else f"tfbot was stopping and the run did not finish within shutdown_grace ({config.shutdown_grace:.0f} s)")
    runs = record_interrupted(redis_url, [c.pid for c in busy if c.pid], why)
    stop_runs(busy, runs, config.terraform_stop_grace)


def stop_runs(busy: list["Child"], runs: dict[int, str], grace: float) -> None:
    """Ask the command each busy worker runs (Terraform, a `run` step) to stop, wait up to `grace` for the
    workers to end their jobs, then kill what is left.

    Only the command gets a signal, one SIGTERM: Terraform then finishes the resource operations it started,
    writes its state and releases its state lock (a second signal makes it exit at once). A command the run
    starts meanwhile (the signal came between two steps) gets its own. The work horse is left alone: it reads
    Terraform's output, and Terraform writing to a pipe nobody reads dies of SIGPIPE in the middle of its
    operations, losing state and leaving its lock held; alive, the horse also records the run's own result.
    """
    asked: set[int] = set()
    deadline = time.monotonic() + grace
    while True:
        pending = [c for c in busy if c.running()]
        for child in pending:
            asked |= ask_to_stop(child, runs.get(child.pid or 0, "an unknown run"), grace, asked)
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    for child in busy:
        if child.running():
            log.error("worker %s: %s did not end within terraform_stop_grace (%.0f s): killing it; its state may lack "
                      "what it was doing, and a remote state lock may stay held", child.pid,
                      runs.get(child.pid or 0, "its run"), grace)
            child.kill()


def ask_to_stop(child: "Child", run: str, grace: float, asked: set[int]) -> set[int]:
    """SIGTERM the commands of `child`'s work horse not asked yet; return their pids."""
    if child.pid is None:
        return set()
    # The worker's children are its work horse (and RQ's scheduler); theirs are Terraform or a `run` step.
    commands = [pid for horse in children_of(child.pid) for pid in children_of(horse) if pid not in asked]
    if commands:
        what = ", ".join(f"{command_line(pid) or 'a command'} (pid {pid})" for pid in commands)
        log.warning("worker %d: asked %s to stop in the run of %s; waiting up to %.0f s (terraform_stop_grace) for "
                    "it to finish its in-flight operations and save its state", child.pid, what, run, grace)
        signal_all(commands, signal.SIGTERM)
    return set(commands)


def record_interrupted(redis_url: str, worker_pids: list[int], reason: str) -> dict[int, str]:
    """Queue the interrupted-run report of every project run these worker processes are running, and tell each
    run why it is being stopped (its own result says so); return what each worker runs, by worker pid."""
    import socket

    from rq import Worker
    from rq.serializers import JSONSerializer

    from bot.jobs import is_run, queue_interrupted_report
    from bot.adapters.redis_server import connect
    from bot.state import keys

    runs: dict[int, str] = {}
    try:
        conn = connect(redis_url)
        host = socket.gethostname()
        for worker in Worker.all(connection=conn, serializer=JSONSerializer):
            if worker.pid not in worker_pids or worker.hostname != host:
                continue
            job = worker.get_current_job()
            if job is not None and is_run(job):
                runs[worker.pid] = describe_run(conn, job)
                log.warning("recording run job %s (%s) as interrupted: %s", job.id, runs[worker.pid], reason)
                conn.set(keys.run_stopping(job.id), reason, ex=STOPPING_TTL_SECONDS)
                queue_interrupted_report(conn, job, reason)
    except Exception:  # noqa: BLE001 - the heartbeat reaper still reports the run at the next start
        log.exception("could not record the interrupted runs; they are reported when their heartbeat expires")
    return runs


def describe_run(conn: redis.Redis, job: Job) -> str:
    """`merge acme/infra#12 network`: which command, PR and project a run job is."""
    from bot.state.records import Records

    command_id, project = job.args[:2]
    try:
        cmd = Records(conn).command(command_id)
    except Exception:  # noqa: BLE001 - only for a log line
        return str(job.description or job.id)
    return f"{cmd.kind} {cmd.repo}#{cmd.pull} {project.get('name', '')}".strip()


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
            log.warning("%s process %d did not stop within %.0fs; killing it and %d process(es) under it",
                        self.command, self.proc.pid, grace, len(descendants(self.proc.pid)))
            self.kill()

    def kill(self) -> None:
        """SIGKILL the process and everything under it."""
        if self.proc is None:
            return
        signal_all([*descendants(self.proc.pid), self.proc.pid], signal.SIGKILL)
        self.proc.wait()
