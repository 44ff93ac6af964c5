"""Pull requests against a running Scenario, timed from the webhook to the plan comment the fake GitHub got."""
from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.timeline import phases, project_jobs
from tests.support import webhook_payloads as wp
from tests.support.scenario import INSTALLATION, REPO, SECRET, SUMMARY_RE, Scenario, tf_config

POLL_SECONDS = 0.01  # the fake GitHub is in this process: polling it costs microseconds


@dataclass
class PrTiming:
    seconds: float  # from sending `opened` to the comment holding every plan
    phases: dict[str, float] = field(default_factory=dict)
    jobs: dict[str, object] = field(default_factory=dict)  # bench.timeline.project_jobs: how workers were shared


def resources(count: int) -> dict[str, str]:
    return {f"r{i}": f"value-{i}" for i in range(count)}


def write_raw_copy(root: Path, name: str, count: int) -> Path:
    """The same configuration as a PR's project, with its own empty state, for Terraform by hand."""
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "main.tf").write_text(tf_config(root / f"{name}.state", resources(count)))
    return directory


_PART = re.compile(r"\(continued, part (\d+) of (\d+)\)")


def _complete_report(comments: list[str]) -> str | None:
    """The bot's comments joined, once a report split over several comments has all its parts; else None."""
    parts = [_PART.search(c) for c in comments]
    wanted = {int(m.group(2)) for m in parts if m}
    if wanted and not any(m and int(m.group(1)) == int(m.group(2)) for m in parts):
        return None
    return "\n".join(comments)


def open_and_wait(scenario: Scenario, branch: str, projects: dict[str, int], timeout: float = 300) -> PrTiming:
    """Open a PR adding one project dir per entry (dir -> resource count) and wait for the bot's report of every
    project's plan (one comment, or its last part when long output splits it); the time is taken from sending
    `opened` to seeing that comment."""
    files: dict[str, str | None] = {
        f"{name}/main.tf": scenario.config_for(name, resources(count)) for name, count in projects.items()
    }
    number = scenario.open_pr(branch, files, send=False)
    head = scenario.head(number)
    payload = wp.pull_request_event("opened", scenario.fake.repo_payload(REPO), scenario.fake.pull_payload(REPO, number),
                                    INSTALLATION, "alice")
    body = wp.encode(payload)
    expected = {f"Plan: {count} to add, 0 to change, 0 to destroy." for count in projects.values()}
    assert scenario.server is not None
    sent_at = time.time()
    start = time.perf_counter()
    answer = scenario.server.post_event("pull_request", body, SECRET, str(uuid.uuid4()))
    if answer.status_code != 202:
        raise RuntimeError(f"opened for #{number} answered {answer.status_code}: {answer.text}")
    deadline = start + timeout
    while time.perf_counter() < deadline:
        text = _complete_report(scenario.bot_comments(number))
        if text is not None and all(f"Planned: `{name}`" in text for name in projects):
            elapsed = time.perf_counter() - start
            found = set(SUMMARY_RE.findall(text))
            if not found <= expected:
                raise RuntimeError(f"unexpected plan in PR #{number}: {found}")
            conn = scenario.redis()
            return PrTiming(elapsed, phases(conn, sent_at, sent_at + elapsed), project_jobs(conn, sent_at))
        status = scenario.fake.latest_status(REPO, head, "tfbot/plan")
        if status and status["state"] in ("failure", "error"):
            raise RuntimeError(f"PR #{number} was not planned ({status}): {_short(scenario.bot_comments(number))}\n"
                               f"--- log ---\n{scenario.logs()[-4000:]}")
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"no plan comment on #{number} after {timeout}s; comments: {_short(scenario.bot_comments(number))}\n"
                       f"--- log ---\n{scenario.logs()[-4000:]}")


def _short(comments: list[str]) -> list[str]:
    return [c[:300] + (" ..." if len(c) > 300 else "") for c in comments]
