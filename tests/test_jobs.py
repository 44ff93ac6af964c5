"""The job module is the one list of what a worker runs: jobs are referenced by function, and each gets the services
of the worker running it (no global to look them up in)."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from rq import Callback
from rq.serializers import JSONSerializer
from rq.utils import import_attribute

from bot import jobs
from bot.ops.worker import refusal

ROOT = Path(__file__).resolve().parents[1]


def test_the_allowlist_is_the_job_and_callback_functions_by_their_stored_names():
    assert jobs.ALLOWED == {f"bot.jobs.{f.__name__}" for f in jobs.JOBS + jobs.CALLBACKS}
    for name in jobs.ALLOWED:
        assert import_attribute(name) in jobs.JOBS + jobs.CALLBACKS  # what RQ imports is the function listed


def test_every_job_takes_the_services_first_and_every_callback_only_what_rq_passes():
    for job in jobs.JOBS:
        assert next(iter(inspect.signature(job).parameters)) == "svc", job.__name__
    for callback in jobs.CALLBACKS:
        assert list(inspect.signature(callback).parameters)[:2] == ["job", "connection"], callback.__name__


def _dotted_strings(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("bot.") \
                and node.value.replace(".", "").replace("_", "").isalnum():
            found.append((node.lineno, node.value))
    return found


def test_no_module_names_a_function_by_string():
    """A job (or anything else) named by a dotted string breaks only when it runs; a reference breaks at import."""
    named = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        for line, text in _dotted_strings(path):
            try:
                target = import_attribute(text)
            except (ImportError, AttributeError, ValueError):
                continue  # a module or package name (a template loader's package), not a function
            if callable(target) and not inspect.ismodule(target):
                named.append(f"{path.relative_to(ROOT)}:{line}: {text}")
    assert named == []


def test_the_scan_finds_a_function_named_by_string(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('queue.enqueue_call("bot.jobs.run_project", args=())\n')
    assert _dotted_strings(sample) == [(1, "bot.jobs.run_project")]


def test_a_job_run_outside_a_worker_says_so(redis_conn):
    queue = jobs.RQJobs(redis_conn, 60).events
    queued = queue.enqueue_call(jobs.replan, args=({}, 1, 2, "why"))
    job = jobs.ServicedJob.fetch(queued.id, connection=redis_conn, serializer=JSONSerializer)
    with pytest.raises(RuntimeError, match="only a tfbot worker runs it"):
        job.perform()


def test_jobs_queued_by_the_queue_are_allowed_and_others_refused(redis_conn):
    queue = jobs.RQJobs(redis_conn, 60)
    queue.handle_delivery("d1", "ping", {})
    queue.report_command("c1")
    [delivery, report] = queue.events.jobs  # a report goes to the events queue: taken before queued runs
    assert refusal(delivery) is None and refusal(report) is None
    assert delivery.id == "delivery-d1" and delivery.func_name == "bot.jobs.handle_delivery"
    stranger = queue.events.enqueue_call("os.system", args=("true",))
    assert "'os.system' is not a tfbot job function" in (refusal(stranger) or "")
    # A callback is not a job, nor a job a callback.
    callback_as_job = queue.events.enqueue_call(jobs.run_failed, args=())
    assert "'bot.jobs.run_failed' is not a tfbot job function" in (refusal(callback_as_job) or "")
    job_as_callback = queue.events.enqueue_call(jobs.replan, args=(), on_failure=Callback(jobs.report_command))
    assert "'bot.jobs.report_command' is not a tfbot callback function" in (refusal(job_as_callback) or "")
