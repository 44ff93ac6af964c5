"""Every job a tfbot worker may run, the callbacks RQ calls around them, and the one place that queues them.

A job is named in Redis by its function's dotted path (`bot.jobs.run_project`); those names are stable, so
jobs queued before an upgrade still run after it. `ALLOWED` is the allowlist a worker checks before importing
anything a job names (bot/ops/worker.py). Jobs are queued through `RQJobs`, which references the functions
themselves: a renamed job breaks the import, not a run.

A job function takes the services of the worker that runs it as its first argument: the worker binds them
(`ServicedJob`), so nothing here looks services up. Callbacks get only the job and the Redis connection (RQ
may call them from a registry clean-up in any process); what needs GitHub they queue as a job of its own.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import redis
from rq import Callback, Queue, Retry, get_current_job
from rq.job import Job

from bot.intake.replay import FINGERPRINT_TTL_SECONDS, fingerprint
from bot.intake.webhooks import Delivery, RawJSON
from bot.queue import (FAILURE_TTL_SECONDS, RESULT_TTL_SECONDS, event_retry, events_queue, function_name,
                       notify_queue, notify_retry, runs_queue)
from bot.state import keys
from bot.state.records import lock_from_dict, lock_to_dict, project_from_dict, project_to_dict

if TYPE_CHECKING:
    from resource import struct_rusage

    from redis.client import Pipeline
    from types import TracebackType

    from bot.lifecycle.routing import Router
    from bot.models import LockInfo, Project, ProjectResult
    from bot.services import WorkerServices
    from bot.state.records import Command

log = logging.getLogger(__name__)
RECENT_DELIVERIES = 1000
# A report waits out a GitHub outage of up to about 15 minutes.
REPORT_RETRY = (5, 15, 60, 180, 600)
# A send takes seconds (bot.adapters.http_post SEND_TIMEOUT); this bounds a receiver that trickles its answer.
NOTIFY_TIMEOUT_SECONDS = 60


# ---- the jobs -------------------------------------------------------------------------------------------------

def handle_delivery(svc: WorkerServices, delivery_id: str, event: str, payload: dict[str, Any]) -> int:
    """Route one webhook delivery to its handlers; return how many ran."""
    router = event_router()
    delivery = Delivery(id=delivery_id, event=event, payload=payload)
    log.info("processing %s", delivery.describe())
    record = json.dumps({"delivery": delivery_id, "event": event, "action": delivery.action, "repo": delivery.repo,
                         "at": time.time()})
    pipe = svc.redis.pipeline()
    pipe.lpush(keys.recent_deliveries(), record)
    pipe.ltrim(keys.recent_deliveries(), 0, RECENT_DELIVERIES - 1)
    pipe.execute()
    mark = fingerprint(event, payload)
    if mark and not svc.redis.set(keys.event_fingerprint(mark), delivery_id, nx=True, ex=FINGERPRINT_TTL_SECONDS):
        log.warning("ignored %s: the same event was already handled (a replay under a new delivery id)",
                    delivery.describe())
        return 0
    try:
        return router.dispatch(delivery, svc)
    except Exception:
        # Not handled after all: a redelivery or reconciliation must be able to act on it.
        if mark:
            svc.redis.delete(keys.event_fingerprint(mark))
        job = get_current_job()
        if job is not None and job.retries_left:
            # One traceback per delivery, written by its last try; the tries before are one line each.
            log.warning("handling %s failed; tried again later", delivery.describe())
            raise
        log.exception("handling %s failed", delivery.describe())
        raise


def event_router() -> Router:
    """Every handler of a webhook: the lifecycle's (PRs, their comments, check runs) and drift issues' comments."""
    from bot.drift.comments import router as drift_router
    from bot.lifecycle.handlers import router as lifecycle_router
    from bot.lifecycle.routing import Router

    return Router(lifecycle_router, drift_router)


def run_project(svc: WorkerServices, command_id: str, project: dict[str, Any], attempt: int = 0) -> str:
    """Run one project of a command; the job that completes the command reports it on the PR.

    A project busy with another run is not waited for here: the job is queued again after a delay (5 s, doubling,
    at most 60 s) for as long as a run may last, so a worker is never held behind another project's Terraform.
    After that it gives up with a result of its own ("could not start"): it never ran, so it is not reported as
    an interrupted run, which would mark the lock of the run that kept the project busy as failed.
    """
    from bot.lifecycle.checks import start_check
    from bot.lifecycle.planning import advance_command
    from bot.lifecycle.runner import ProjectBusy, could_not_start
    from bot.lifecycle.runner import run_project as run
    from bot.state.liveness import heartbeat

    cmd = svc.records.command(command_id)
    job = get_current_job()
    with heartbeat(svc.redis, job.id if job else f"{command_id}-{project.get('name')}"):
        if cmd.kind == "plan":
            # The project's check run: in progress from now. An apply, a merge or a hand-over decides first and
            # makes it only once Terraform is about to run (bot/lifecycle/runner.py).
            start_check(svc, cmd, project_from_dict(project))
        try:
            result = run(svc, cmd, project_from_dict(project))
        except ProjectBusy as exc:
            if _defer_run(svc, command_id, project, attempt):
                log.info("%s %s#%d %s: %s; deferred (attempt %d)", cmd.kind, cmd.repo, cmd.pull,
                         project.get("name"), exc, attempt + 1)
                return "deferred"
            log.warning("%s %s#%d %s: %s; gave up after %d attempts", cmd.kind, cmd.repo, cmd.pull,
                        project.get("name"), exc, attempt + 1)
            result = could_not_start(cmd, project_from_dict(project), str(exc))
        result = _say_why_stopped(svc, job, cmd, result)
        # Inside the heartbeat: the reaper must never take a finished run for a dead one.
        if svc.records.add_result(cmd.id, result) or svc.records.replace_interrupted_result(cmd.id, result):
            svc.jobs.report_command(cmd.id)
        advance_command(svc, cmd)  # an apply in order: what waited for this project may start now
    return result.outcome.value


def _say_why_stopped(svc: WorkerServices, job: Job | None, cmd: Command, result: ProjectResult) -> ProjectResult:
    """A run whose Terraform a stopping `tfbot serve` asked to stop reports its own result, saying why it ended."""
    from bot.lifecycle.interrupted import stopped_result
    from bot.models import Outcome

    reason = svc.redis.get(keys.run_stopping(job.id)) if job is not None else None
    if not reason or result.outcome not in (Outcome.PLAN_FAILED, Outcome.APPLY_FAILED):
        return result
    return stopped_result(svc, cmd, result, keys.text(reason))


def busy_retry_delay(svc: WorkerServices, attempt: int) -> float | None:
    """Seconds to wait before try `attempt + 1` of a job that found its project busy (5 s, doubling, at most 60 s
    apart), or None once the waits add up to more than any run may last (`terraform.timeout` + 2 minutes)."""
    delays = [min(5 * 2 ** i, 60) for i in range(attempt + 1)]
    return float(delays[-1]) if sum(delays) <= svc.config.terraform.timeout + 120 else None


def _defer_run(svc: WorkerServices, command_id: str, project: dict[str, Any], attempt: int) -> bool:
    """Queue `run_project` again later; False once it has waited longer than any run may last."""
    delay = busy_retry_delay(svc, attempt)
    if delay is None:
        return False
    svc.runs_queue.enqueue_in(
        timedelta(seconds=delay), run_project, command_id, project, attempt + 1,
        job_timeout=run_timeout(svc.config.terraform.timeout), on_failure=Callback(run_failed),
        result_ttl=RESULT_TTL_SECONDS, failure_ttl=FAILURE_TTL_SECONDS,
        description=f"run {command_id} {project.get('name')} (deferred)")
    return True


def report_command(svc: WorkerServices, command_id: str) -> None:
    """Post the comment and status of a completed command (idempotent across retries)."""
    from bot.lifecycle.reporting import finish_command

    finish_command(svc, svc.records.command(command_id))


def replan(svc: WorkerServices, project: dict[str, Any], pull: int, installation: int, why: str) -> None:
    """Plan one project of a PR again on its current head, because `why`."""
    from bot.lifecycle.handlers.pull_requests import plan_again

    plan_again(svc, project, pull, installation, note=f"tfbot planned this again because {why}.")


def plan_waiter(svc: WorkerServices, project: dict[str, Any], pull: int, installation: int, reason: str) -> None:
    """A PR that waited in line now holds the lock: plan it on its current head."""
    from bot.lifecycle.handlers.pull_requests import plan_handed_over

    plan_handed_over(svc, project, pull, installation, reason)


def announce_unlock(svc: WorkerServices, lock: dict[str, Any], by: str, via: str, next_pull: int | None,
                    reason: str = "") -> bool:
    """Someone unlocked from the lock page: drop the PR's saved plan of that project and tell the PR (with the
    reason they gave; jobs queued before reasons were posted have none)."""
    from bot.lifecycle.handover import announce_unlock as announce

    return announce(svc, lock_from_dict(lock), by, via, next_pull, mention=True, reason=reason)


def announce_expiry(svc: WorkerServices, lock: dict[str, Any], after: float, next_pull: int | None) -> bool:
    """A lock expired (`locks.expire_after`): drop the PR's saved plan of that project and tell the PR why."""
    from bot.lifecycle.handover import announce_expiry as announce

    return announce(svc, lock_from_dict(lock), after, next_pull)


def report_interrupted(svc: WorkerServices, command_id: str, project: dict[str, Any], reason: str) -> None:
    """Tell the PR that a run was interrupted, whether Terraform left its state lock behind, and what to do."""
    from bot.lifecycle.interrupted import report_interrupted as report

    report(svc, command_id, project, reason)


def report_drift_interrupted(svc: WorkerServices, repo: str, installation: int, issue: int, author: str,
                             reason: str) -> int:
    """Tell a drift issue that the apply it asked for stopped without finishing, and which lock it still holds."""
    from bot.drift.apply import report_interrupted

    return report_interrupted(svc, repo, installation, issue, author, reason)


def report_event_failure(svc: WorkerServices, kind: str, args: list[Any], error: str) -> None:
    """Tell the PR that an event job (`kind`: one of EVENT_KINDS' values) failed for good, and what helps.

    Tried as often as the event job was; a last failure is one log line: the event job's own failure was
    logged with its traceback, and this is most often the same outage.
    """
    from bot.lifecycle.events_failed import report_event_failure as report

    try:
        report(svc, kind, args, error)
    except Exception as exc:
        job = get_current_job()
        if job is not None and job.retries_left:
            raise
        log.error("could not report the failure of a %s job on its PR: %s: %s", kind, type(exc).__name__, exc)


def send_notification(svc: WorkerServices, index: int, receiver: str, notice: dict[str, Any], delivery: str) -> str:
    """POST one notification to receiver `index` of `notifications` (bot.notify.sending); `sent`, `failed` or
    `dropped`. Raises while tries remain, so RQ tries again with the notification retry policy."""
    from bot.notify.sending import deliver

    job = get_current_job()
    return deliver(svc, index, receiver, notice, delivery, last_try=not (job is not None and job.retries_left))


def check_drift(svc: WorkerServices, project: dict[str, Any], reason: str, link: str, attempt: int = 0) -> str:
    """Check one project for drift now, because `reason` (`scheduled`, or a change record at `link`): plan the default
    branch's head and keep the result and the project's drift issue (bot/drift/check.py); returns the state.

    A project busy with another run is checked again later (as `run_project` defers), for as long as a run may last;
    after that its check stays `skipped`. One whose lock a PR holds is skipped at once: the PR may hold it for days.
    """
    from bot.changes.drift import request_drift_check
    from bot.drift.check import busy

    delay = busy_retry_delay(svc, attempt)
    check = request_drift_check(svc, project_from_dict(project), reason, link, retried_if_busy=delay is not None)
    if busy(check):
        if delay is not None:
            svc.runs_queue.enqueue_in(
                timedelta(seconds=delay), check_drift, project, reason, link, attempt + 1,
                job_timeout=run_timeout(svc.config.terraform.timeout), result_ttl=RESULT_TTL_SECONDS,
                failure_ttl=FAILURE_TTL_SECONDS, description=f"drift check {project.get('repo')} "
                                                             f"{project.get('name')} (deferred)")
            return "deferred"
    return check.state.value


def apply_drift(svc: WorkerServices, repo: str, installation: int, issue: int, author: str, comment_url: str,
                shown_digest: str = "", attempt: int = 0) -> str:
    """`author`'s `apply` on drift issue `issue`: apply the default branch's plan of its project if it is the one the
    issue shows (bot/drift/apply.py). A project busy with another run is tried again later, as `run_project` is
    (its lock is let go meanwhile); after that the issue is told."""
    from bot.drift.apply import DriftApplyRequest, DriftBusy, apply_from_issue
    from bot.state.liveness import heartbeat

    request = DriftApplyRequest(repo=repo, installation=installation, issue=issue, author=author,
                                comment_url=comment_url, shown_digest=shown_digest)
    job = get_current_job()
    try:
        # Beating like a project run: a worker that dies with it is found by the reaper within a minute or so.
        with heartbeat(svc.redis, job.id if job else f"drift-apply-{repo}-{issue}"):
            return apply_from_issue(svc, request)
    except DriftBusy as exc:
        delay = busy_retry_delay(svc, attempt)
        if delay is not None:
            log.info("drift apply %s#%d: %s; deferred (attempt %d)", repo, issue, exc, attempt + 1)
            svc.runs_queue.enqueue_in(
                timedelta(seconds=delay), apply_drift, repo, installation, issue, author, comment_url,
                shown_digest, attempt + 1, job_timeout=run_timeout(svc.config.terraform.timeout),
                on_failure=Callback(run_failed), result_ttl=RESULT_TTL_SECONDS, failure_ttl=FAILURE_TTL_SECONDS,
                description=f"drift apply {repo}#{issue} (deferred)")
            return "deferred"
        svc.github.repo(installation, repo).create_comment(issue, (
            f"@{author}: nothing was applied: the project stayed busy with another run for longer than tfbot waits "
            f"({exc}). Comment `apply` again once it has ended."))
        return "busy"


def index_states(svc: WorkerServices) -> str:
    """Read the Terraform state of every project change records may name, for the resources it holds."""
    from bot.changes.state_index import refresh_state_index

    report = refresh_state_index(svc)
    log.info("%s", report.summary())
    return report.summary()


# ---- the callbacks: RQ calls them with the job and the connection only ----------------------------------------

def run_failed(job: Job, connection: redis.Redis, exc_type: type[BaseException] | None = None,
               exc_value: BaseException | None = None, tb: TracebackType | None = None) -> None:
    """RQ failure callback of a project run: the job raised, timed out, or was abandoned by a dead worker."""
    reason = "its worker stopped without finishing it (killed or crashed)" if exc_type is None or \
        getattr(exc_type, "__name__", "") == "AbandonedJobError" else f"it failed inside tfbot ({exc_type.__name__})"
    queue_interrupted_report(connection, job, reason)


def event_job_failed(job: Job, connection: redis.Redis, exc_type: type[BaseException] | None = None,
                     exc_value: BaseException | None = None, tb: TracebackType | None = None) -> None:
    """RQ failure callback of event jobs: once the last try failed, queue the report that tells the PR."""
    kind = EVENT_KINDS.get(job.func_name or "")
    if getattr(job, "retries_left", None):
        log.warning("event job %s failed (%s); %d retries left", job.id, getattr(exc_type, "__name__", "error"),
                    job.retries_left)
        return
    if kind is None:
        return
    error = f"{getattr(exc_type, '__name__', 'error')}: {exc_value}"
    # Retried like the event job, but with no failure callback: a report that fails is logged, never reported.
    events_queue(connection).enqueue_call(
        report_event_failure, args=(kind, list(job.args), error), retry=event_retry(),
        result_ttl=RESULT_TTL_SECONDS, failure_ttl=FAILURE_TTL_SECONDS,
        description=f"report the failure of job {job.id}")


def horse_killed(connection: redis.Redis, job: Job, retpid: int, ret_val: int, rusage: struct_rusage) -> None:
    """Called in the worker (bound to its connection) when the process running a job died (SIGKILL, out of memory)."""
    signal_name = f"signal {os.WTERMSIG(ret_val)}" if ret_val and os.WIFSIGNALED(ret_val) else f"status {ret_val}"
    queue_interrupted_report(connection, job, f"the process running it died ({signal_name})")


def queue_interrupted_report(connection: redis.Redis, job: Job, reason: str) -> None:
    """Queue the report of a run that will never finish (its process or worker died); other jobs are ignored.
    On the events queue, which workers take first, like every report: it must not wait behind queued runs."""
    if job.func_name == _DRIFT_APPLY:
        if not connection.set(keys.interrupt_queued(job.id), "1", nx=True, ex=24 * 3600):
            return  # found dead before by another path; a project run's report is kept once by its command instead
        repo, installation, issue, author = job.args[:4]
        events_queue(connection).enqueue_call(
            report_drift_interrupted, args=(repo, installation, issue, author, reason), retry=event_retry(),
            result_ttl=RESULT_TTL_SECONDS, failure_ttl=FAILURE_TTL_SECONDS,
            description=f"report interrupted drift apply {repo}#{issue}")
        return
    if not is_run(job):
        return
    command_id, project = job.args[:2]
    events_queue(connection).enqueue_call(
        report_interrupted, args=(command_id, project, reason), retry=event_retry(), result_ttl=RESULT_TTL_SECONDS,
        failure_ttl=FAILURE_TTL_SECONDS, description=f"report interrupted run of command {command_id}",
    )


def is_run(job: Job) -> bool:
    """True for a project run (the jobs that run Terraform for a PR's command)."""
    return job.func_name == _RUN


def beats(job: Job) -> bool:
    """True for the jobs that keep a heartbeat while they run (bot/state/liveness.py): a project run and a drift
    issue's apply. The reaper reports one whose heartbeat stopped with its worker."""
    return job.func_name in (_RUN, _DRIFT_APPLY)


# ---- what a worker may run -------------------------------------------------------------------------------------

JOBS: tuple[Callable[..., Any], ...] = (
    handle_delivery, run_project, report_command, replan, plan_waiter, announce_unlock, announce_expiry,
    report_interrupted, report_drift_interrupted, report_event_failure, send_notification, check_drift, apply_drift,
    index_states)
CALLBACKS: tuple[Callable[..., Any], ...] = (run_failed, event_job_failed)
ALLOWED_JOBS: frozenset[str] = frozenset(function_name(f) for f in JOBS)
ALLOWED_CALLBACKS: frozenset[str] = frozenset(function_name(f) for f in CALLBACKS)
ALLOWED: frozenset[str] = ALLOWED_JOBS | ALLOWED_CALLBACKS
_RUN = function_name(run_project)
_DRIFT_APPLY = function_name(apply_drift)
# Jobs whose failed tries are expected (a receiver down for a while): a try that will be retried is a WARNING, and
# the job itself writes the ERROR of its last.
QUIET_RETRIES: frozenset[str] = frozenset({function_name(send_notification)})
# The event jobs whose last failure the PR hears of, by the kind bot.lifecycle.events_failed knows them by.
EVENT_KINDS: dict[str, str] = {function_name(handle_delivery): "delivery", function_name(plan_waiter): "handover",
                               function_name(replan): "replan"}


class ServicedJob(Job):
    """An RQ job whose function is called with the worker's services first (bound by the worker before it runs)."""

    services: WorkerServices | None = None

    @property
    def func(self) -> Callable[..., Any] | None:
        function = super().func
        if function is None:
            return None
        if self.services is None:
            raise RuntimeError(f"tfbot job {self.func_name} run without services: only a tfbot worker runs it")
        return partial(function, self.services)


def run_timeout(terraform_timeout: float) -> int:
    """Seconds a project run may take before RQ kills it: init, plan and apply each up to the Terraform timeout."""
    return int(terraform_timeout * 3 + 600)


# ---- queueing --------------------------------------------------------------------------------------------------

class RQJobs:
    """Queues tfbot's jobs on the one Redis (bot.services.JobQueue). Arguments are JSON only, never pickles."""

    def __init__(self, connection: redis.Redis, run_timeout_seconds: int) -> None:
        self.events: Queue = events_queue(connection)
        self.runs: Queue = runs_queue(connection)
        self.notify: Queue = notify_queue(connection)
        self._run_timeout = run_timeout_seconds

    def _event(self, func: Callable[..., Any], args: tuple[Any, ...], description: str, *,
               job_id: str | None = None, report_failure: bool = True, pipeline: Pipeline | None = None) -> str:
        """An event job: retried with backoff (bot.queue.event_retry); after its last try the PR is told."""
        job = self.events.enqueue_call(
            func, args=args, job_id=job_id, result_ttl=RESULT_TTL_SECONDS, failure_ttl=FAILURE_TTL_SECONDS,
            description=description, retry=event_retry(), pipeline=pipeline,
            on_failure=Callback(event_job_failed) if report_failure else None)
        return str(job.id)

    def handle_delivery(self, delivery_id: str, event: str, payload: dict[str, Any] | RawJSON,
                        pipeline: Pipeline | None = None) -> str:
        """Queue one verified delivery; return its job id (`delivery-<id>`, for tracing). A `RawJSON` payload (the
        body as received) is written into the job as it is, not encoded again; with `pipeline`, the job's writes are
        only recorded there."""
        return self._event(handle_delivery, (delivery_id, event, payload), f"{event} delivery {delivery_id}",
                           job_id=f"delivery-{delivery_id}", pipeline=pipeline)

    def run_project(self, cmd: Command, project: Project) -> None:
        """Queue the run of one project of a command."""
        self.runs.enqueue_call(
            run_project, args=(cmd.id, project_to_dict(project)), timeout=self._run_timeout,
            on_failure=Callback(run_failed), result_ttl=RESULT_TTL_SECONDS, failure_ttl=FAILURE_TTL_SECONDS,
            description=f"{cmd.kind} {cmd.repo}#{cmd.pull} {project.name}")

    def report_command(self, command_id: str) -> None:
        """Report a completed command in a job of its own, retried with backoff while GitHub is unreachable. On the
        events queue, which workers take first: a PR's comment never waits behind other PRs' queued Terraform runs
        (with 50 PRs at once, the first comment came only once every plan had run)."""
        self.events.enqueue_call(
            report_command, args=(command_id,), retry=Retry(max=len(REPORT_RETRY), interval=list(REPORT_RETRY)),
            result_ttl=RESULT_TTL_SECONDS, failure_ttl=FAILURE_TTL_SECONDS, description=f"report command {command_id}")

    def replan(self, project: Project, pull: int, installation: int, why: str) -> None:
        """Plan one project of a PR again, on its head merged into its base."""
        self._event(replan, (project_to_dict(project), pull, installation, why),
                    f"replan {project.repo}#{pull} {project.name}")

    def plan_waiter(self, project: Project, pull: int, installation: int, reason: str) -> None:
        """Plan the PR that was just handed the lock of `project`."""
        self._event(plan_waiter, (project_to_dict(project), pull, installation, reason),
                    f"plan {project.repo}#{pull} {project.name} after the lock was handed over")

    def announce_unlock(self, lock: LockInfo, by: str, via: str, next_pull: int | None, reason: str = "") -> None:
        """Tell the PR that held `lock` that `by` unlocked it (`via`: where), why, and who holds it now."""
        self._event(announce_unlock, (lock_to_dict(lock), by, via, next_pull, reason),
                    f"tell {lock.repo}#{lock.pull} that {by} unlocked {lock.project}", report_failure=False)

    def announce_expiry(self, lock: LockInfo, after: float, next_pull: int | None) -> None:
        """Tell the PR that held `lock` that it expired after `after` idle seconds, and who holds it now."""
        self._event(announce_expiry, (lock_to_dict(lock), after, next_pull),
                    f"tell {lock.repo}#{lock.pull} that its lock of {lock.project} expired", report_failure=False)

    def send_notification(self, index: int, receiver: str, notice: dict[str, Any], delivery: str) -> None:
        """Queue one notification for receiver `index` on the notification queue, retried with backoff."""
        self.notify.enqueue_call(
            send_notification, args=(index, receiver, notice, delivery), retry=notify_retry(),
            timeout=NOTIFY_TIMEOUT_SECONDS, result_ttl=RESULT_TTL_SECONDS, failure_ttl=FAILURE_TTL_SECONDS,
            description=f"notify {notice.get('event')} of {notice.get('repo')} to notifications[{index}]")

    def check_drift(self, project: Project, reason: str, link: str) -> None:
        """Check `project` for drift, because `reason` (a change record at `link`)."""
        self.runs.enqueue_call(
            check_drift, args=(project_to_dict(project), reason, link), timeout=self._run_timeout,
            result_ttl=RESULT_TTL_SECONDS,
            failure_ttl=FAILURE_TTL_SECONDS, description=f"drift check {project.repo} {project.name}")

    def apply_drift(self, repo: str, installation: int, issue: int, author: str, comment_url: str,
                    shown_digest: str = "") -> None:
        """`author`'s `apply` on drift issue `issue` (whose body showed the plan of `shown_digest` when commented),
        on the runs queue: it runs Terraform."""
        self.runs.enqueue_call(
            apply_drift, args=(repo, installation, issue, author, comment_url, shown_digest), timeout=self._run_timeout,
            on_failure=Callback(run_failed), result_ttl=RESULT_TTL_SECONDS, failure_ttl=FAILURE_TTL_SECONDS,
            description=f"drift apply {repo}#{issue} by {author}")

    def index_states(self) -> None:
        """Read the projects' states for change records, in a job of its own (it runs Terraform)."""
        self.runs.enqueue_call(index_states, timeout=self._run_timeout, result_ttl=RESULT_TTL_SECONDS,
                               failure_ttl=FAILURE_TTL_SECONDS, description="read the projects' states for "
                                                                            "change records")
