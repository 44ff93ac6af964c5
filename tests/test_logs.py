"""Log lines: secrets masked, `log_format: json` for log shippers, libraries quiet unless DEBUG."""
from __future__ import annotations

import json
import logging

import pytest

from bot.adapters.logs import setup_logging, was_logged


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_masked_message_and_one_traceback(capsys):
    setup_logging("INFO", ["s3cr3t-webhook-value"], "worker", "json")
    log = logging.getLogger("tfbot.test")
    log.info("delivery for %s signed with s3cr3t-webhook-value", "acme/infra")
    try:
        raise ValueError("boom s3cr3t-webhook-value")
    except ValueError as exc:
        log.exception("handling failed")
        assert was_logged(exc), "a caller up the stack can tell the traceback was written"
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["message"] == "delivery for acme/infra signed with ***"
    assert first["level"] == "INFO" and first["process"] == "worker" and first["logger"] == "tfbot.test"
    assert first["time"].endswith("Z") and "traceback" not in first
    assert second["message"] == "handling failed" and second["traceback"].startswith("Traceback")
    assert "ValueError: boom ***" in second["traceback"] and "s3cr3t" not in second["traceback"]


@pytest.mark.parametrize("level, rq_shown", [("INFO", False), ("WARNING", False), ("DEBUG", True)])
def test_library_chatter_shows_only_at_debug(level, rq_shown):
    setup_logging(level, [], "worker")
    for name in ("rq.worker", "rq.scheduler", "urllib3", "github.Requester"):
        assert logging.getLogger(name).isEnabledFor(logging.INFO) is rq_shown
    assert logging.getLogger("tfbot.jobs").isEnabledFor(logging.INFO) is (level != "WARNING")
