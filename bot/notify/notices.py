"""What a notification says (`Notice`), which receivers want it, and the notices of applies and of PRs waiting long
for a lock (pure: values in, values out)."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from bot.config.models import NotificationConfig
from bot.models import LockInfo, Outcome, ProjectResult

if TYPE_CHECKING:
    from bot.state.records import Command

APPLY_SUCCEEDED = "apply_succeeded"
APPLY_FAILED = "apply_failed"
LOCK_WAITING_LONG = "lock_waiting_long"
DRIFT_FOUND = "drift_found"
DRIFT_RESOLVED = "drift_resolved"
# Outcomes of an apply (or a merge's apply) that receivers hear of. ERROR: the apply was interrupted, or tfbot could
# not run it; either way what the PR asked for is not applied.
_APPLY_EVENTS = {Outcome.APPLIED: APPLY_SUCCEEDED, Outcome.APPLY_FAILED: APPLY_FAILED, Outcome.ERROR: APPLY_FAILED}


@dataclass(frozen=True)
class Notice:
    """One event for receivers. Text fields come from PRs and Terraform: hostile, escaped by `bodies`.

    `pull` is 0 when no PR is involved (drift). `at` is unix seconds. `key` makes the notice once-only: a notice
    with the same event and key reaches each receiver once ("" : every time it is emitted). `waited_seconds` is how
    long a PR has waited for a lock (lock_waiting_long only).
    """

    event: str
    repo: str
    project: str = ""
    pull: int = 0
    pull_title: str = ""
    pull_url: str = ""
    user: str = ""
    summary: str = ""
    run_url: str = ""
    at: float = 0.0
    waited_seconds: float = 0.0
    key: str = ""

    def to_dict(self) -> dict[str, Any]:
        """As job arguments (JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Notice":
        """The notice `to_dict` wrote; keys a newer tfbot added are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def receiver_id(receiver: NotificationConfig) -> str:
    """A stable name of a receiver that does not reveal its URL: its once-only marks are kept under it, and a job
    queued for it is dropped if the config no longer has it at the same place."""
    return hashlib.sha256(f"{receiver.kind}\n{receiver.url}".encode()).hexdigest()[:16]


def describe_receiver(index: int, receiver: NotificationConfig) -> str:
    """`notifications[1] (webhook)`: how logs name a receiver (never by its URL, a secret)."""
    return f"notifications[{index}] ({receiver.kind})"


def receivers_for(notice: Notice, receivers: Sequence[NotificationConfig]) -> list[int]:
    """Indexes of the receivers that want `notice`: its event, its repository, and for lock_waiting_long a wait at
    least as long as the receiver's `lock_waiting_after`."""
    return [i for i, receiver in enumerate(receivers)
            if notice.event in receiver.events and receiver.wants_repo(notice.repo)
            and (notice.event != LOCK_WAITING_LONG or notice.waited_seconds >= receiver.lock_waiting_after)]


def apply_notices(cmd: Command, results: Iterable[ProjectResult], run_url: Callable[[str], str],
                  now: float) -> list[Notice]:
    """One notice per project whose apply finished in `cmd` (an apply, a merge's apply or a hand-over's); none for a
    plan. Once-only per command, project and event: a report retried after a GitHub failure sends nothing twice, and
    an interrupted run's later real result is told as well."""
    if cmd.kind == "plan":
        return []
    notices = []
    for result in results:
        event = _APPLY_EVENTS.get(result.outcome)
        if event is None:
            continue
        notices.append(Notice(
            event=event, repo=cmd.repo, project=result.project.name, pull=cmd.pull,
            pull_title=str(cmd.info.get("title", "")), pull_url=str(cmd.info.get("html_url", "")), user=cmd.user,
            summary=result.summary or ("applied" if event == APPLY_SUCCEEDED else "apply failed"),
            run_url=run_url(result.run_id) if result.run_id else "", at=now,
            key=f"{cmd.id}:{result.project.id}"))
    return notices


def waiting_notices(lines: Iterable[tuple[LockInfo, list[dict[str, Any]]]], now: float,
                    after: float) -> list[Notice]:
    """A lock_waiting_long notice for every PR that has waited at least `after` seconds in a lock's line.

    `lines` pairs each held lock with its waiting line (entries with `pull`, `user`, `pull_title`, `pull_url`,
    `queued_at`: bot.state.locks). Once-only per lock and PR. The wait counts from the entry's `queued_at`: the PR's
    latest request for the lock (a push that plans again asks again).
    """
    notices = []
    for lock, line in lines:
        for entry in line:
            waited = now - float(entry.get("queued_at") or now)
            if waited < after:
                continue
            pull = int(entry["pull"])
            notices.append(Notice(
                event=LOCK_WAITING_LONG, repo=lock.repo, project=lock.project, pull=pull,
                pull_title=str(entry.get("pull_title", "")), pull_url=str(entry.get("pull_url", "")),
                user=str(entry.get("user", "")), at=now, waited_seconds=round(waited),
                summary=(f"#{pull} has waited {human_duration(waited)} for the lock of {lock.project}, held by "
                         f"#{lock.pull} ({lock.state.value})"),
                key=f"{lock.repo}:{lock.workspace}:{lock.dir}:{pull}"))
    return notices


def lock_wait_threshold(receivers: Sequence[NotificationConfig]) -> float | None:
    """The shortest `lock_waiting_after` of the receivers that want lock_waiting_long; None when none does."""
    return min((r.lock_waiting_after for r in receivers if LOCK_WAITING_LONG in r.events), default=None)


def watch_interval(threshold: float) -> float:
    """Seconds between two looks at the waiting lines: a quarter of the threshold, between 1 s and 60 s, so a wait
    is told at most a quarter (or a minute) late."""
    return min(60.0, max(1.0, threshold / 4))


def human_duration(seconds: float) -> str:
    """`2h 5m`, `3m 10s`, `45s`, `1d 2h`: the two largest units."""
    total = max(0, int(seconds))
    parts = [(total // 86400, "d"), (total % 86400 // 3600, "h"), (total % 3600 // 60, "m"), (total % 60, "s")]
    first = next((i for i, (n, _) in enumerate(parts) if n), len(parts) - 1)
    return " ".join(f"{n}{unit}" for n, unit in parts[first:first + 2] if n or unit == parts[first][1])
