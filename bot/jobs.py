"""RQ job entry points. A worker process sets its services once; each job looks them up here."""
from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from rq import get_current_job

from bot.state import keys
from bot.intake.replay import FINGERPRINT_TTL_SECONDS, fingerprint
from bot.intake.webhooks import Delivery
from bot.queue import queue_report

if TYPE_CHECKING:
    from resource import struct_rusage
    from types import TracebackType

    import redis
    from rq.job import Job

    from bot.models import ProjectResult
    from bot.services import WorkerServices
    from bot.state.records import Command

log = logging.getLogger(__name__)
_services: WorkerServices | None = None
RECENT_DELIVERIES = 1000


def set_services(services: WorkerServices) -> None:
    """Called once by `tfbot worker` before it starts taking jobs."""
    global _services
    _services = services


def services() -> WorkerServices:
    if _services is None:
        raise RuntimeError("tfbot job run outside a tfbot worker: services were not set")
    return _services


def handle_delivery(delivery_id: str, event: str, payload: dict[str, Any]) -> int:
    """Route one webhook delivery to its handlers; return how many ran."""
    from bot.lifecycle.handlers import router

    svc = services()
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


def run_project(command_id: str, project: dict[str, Any], attempt: int = 0) -> str:
    """Run one project of a command; the job that completes the command reports it on the PR.

    A project busy with another run is not waited for here: the job is queued again after a delay (5 s, doubling,
    at most 60 s) for as long as a run may last, so a worker is never held behind another project's Terraform.
    After that it gives up with a result of its own ("could not start"): it never ran, so it is not reported as
    an interrupted run, which would mark the lock of the run that kept the project busy as failed.
    """
    from bot.state.records import project_from_dict
    from bot.lifecycle.runner import ProjectBusy, could_not_start
    from bot.lifecycle.runner import run_project as run

    from rq import get_current_job

    from bot.state.liveness import heartbeat

    svc = services()
    cmd = svc.records.command(command_id)
    job = get_current_job()
    with heartbeat(svc.redis, job.id if job else f"{command_id}-{project.get('name')}"):
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
            queue_report(svc.runs_queue, cmd.id)
    return result.outcome.value


def _say_why_stopped(svc: WorkerServices, job: Job | None, cmd: Command, result: ProjectResult) -> ProjectResult:
    """A run whose Terraform a stopping `tfbot serve` asked to stop reports its own result, saying why it ended."""
    from bot.lifecycle.interrupted import stopped_result
    from bot.models import Outcome

    reason = svc.redis.get(keys.run_stopping(job.id)) if job is not None else None
    if not reason or result.outcome not in (Outcome.PLAN_FAILED, Outcome.APPLY_FAILED):
        return result
    return stopped_result(svc, cmd, result, keys.text(reason))


def _defer_run(svc: WorkerServices, command_id: str, project: dict[str, Any], attempt: int) -> bool:
    """Queue `run_project` again later; False once it has waited longer than any run may last."""
    from datetime import timedelta

    from rq import Callback

    delays = [min(5 * 2 ** i, 60) for i in range(attempt + 1)]
    if sum(delays) > svc.config.terraform.timeout + 120:
        return False
    svc.runs_queue.enqueue_in(
        timedelta(seconds=delays[-1]), "bot.jobs.run_project", command_id, project, attempt + 1,
        job_timeout=int(svc.config.terraform.timeout * 3 + 600), on_failure=Callback("bot.jobs.run_failed"),
        result_ttl=3600, failure_ttl=7 * 24 * 3600, description=f"run {command_id} {project.get('name')} (deferred)")
    return True


def report_command(command_id: str) -> None:
    """Post the comment and status of a completed command (idempotent across retries)."""
    from bot.lifecycle.reporting import finish_command

    svc = services()
    finish_command(svc, svc.records.command(command_id))


def replan(project: dict[str, Any], pull: int, installation: int, why: str) -> None:
    """Plan one project of a PR again on its current head, because `why`."""
    from bot.lifecycle.handlers.pull_requests import plan_again

    plan_again(services(), project, pull, installation, note=f"tfbot planned this again because {why}.")


def plan_waiter(project: dict[str, Any], pull: int, installation: int, reason: str) -> None:
    """A PR that waited in line now holds the lock: plan it on its current head."""
    from bot.lifecycle.handlers.pull_requests import plan_handed_over

    plan_handed_over(services(), project, pull, installation, reason)


def run_failed(job: Job, connection: redis.Redis, exc_type: type[BaseException] | None = None,
               exc_value: BaseException | None = None, tb: TracebackType | None = None) -> None:
    """RQ failure callback of a project run: the job raised, timed out, or was abandoned by a dead worker."""
    reason = "its worker stopped without finishing it (killed or crashed)" if exc_type is None or \
        getattr(exc_type, "__name__", "") == "AbandonedJobError" else f"it failed inside tfbot ({exc_type.__name__})"
    _queue_interrupted_report(connection, job, reason)


def horse_killed(job: Job, retpid: int, ret_val: int, rusage: struct_rusage) -> None:
    """Called in the worker when the process running a job died (SIGKILL, out of memory)."""
    import os

    signal_name = f"signal {os.WTERMSIG(ret_val)}" if ret_val and os.WIFSIGNALED(ret_val) else f"status {ret_val}"
    if job.func_name == "bot.jobs.run_project":
        _queue_interrupted_report(services().redis, job, f"the process running it died ({signal_name})")


def queue_interrupted_report(connection: redis.Redis, job: Job, reason: str) -> None:
    """Queue the report of a run that will never finish (its process or worker died)."""
    _queue_interrupted_report(connection, job, reason)


def _queue_interrupted_report(connection: redis.Redis, job: Job, reason: str) -> None:
    from bot.queue import runs_queue

    if job.func_name != "bot.jobs.run_project":
        return
    command_id, project = job.args[:2]
    runs_queue(connection).enqueue_call(
        "bot.jobs.report_interrupted", args=(command_id, project, reason), result_ttl=3600,
        failure_ttl=7 * 24 * 3600, description=f"report interrupted run of command {command_id}",
    )


def report_interrupted(command_id: str, project: dict[str, Any], reason: str) -> None:
    """Tell the PR that a run was interrupted, whether Terraform left its state lock behind, and what to do."""
    from bot.lifecycle.interrupted import report_interrupted as report

    report(services(), command_id, project, reason)


def event_job_failed(job: Job, connection: redis.Redis, exc_type: type[BaseException] | None = None,
                     exc_value: BaseException | None = None, tb: TracebackType | None = None) -> None:
    """RQ failure callback of event jobs: tell the PR that tfbot could not handle what it asked for."""
    from bot.lifecycle.events_failed import report_event_failure

    try:
        report_event_failure(services(), job, exc_type, exc_value)
    except Exception as exc:  # noqa: BLE001 - a failure report must not fail the worker
        # The job's own failure was logged with its traceback; this is most often the same outage.
        log.error("could not report the failure of job %s on its PR: %s: %s", job.id, type(exc).__name__, exc)
