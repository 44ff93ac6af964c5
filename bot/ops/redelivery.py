"""Webhooks missed while tfbot (or its Redis) was down: ask GitHub to send them again.

GitHub never retries a failed delivery by itself. It keeps the App's delivery attempts for 3 days
(GitHub Enterprise Server: 7) and sends one again on request. `decide` is the pure part: given the
listed attempts, the guids Redis has seen and the attempts already asked for, what to do with each
event. `redeliver_missed` lists, decides, asks and remembers.

What is redelivered, and why:
- Only events tfbot handles, and only when Redis has not seen their guid (the `X-GitHub-Delivery`
  header; intake records it when it queues the event), so nothing queued or processed runs twice.
- Never an event of which any attempt got a 2xx: something took it.
- Only when the newest attempt failed for want of tfbot: no answer at all (status 0: refused, reset,
  timed out), a 5xx (tfbot's 503 while Redis is down, a proxy's 502/504), 408 or 429. A 4xx is
  tfbot's verdict on the request itself (401 bad signature, 400 malformed, 413 too large): the same
  bytes get the same answer, so asking again would loop for 3 days. When a wrong webhook secret caused
  401s, fix the secret and redeliver those from the App's settings ("Advanced"); each pass logs them.
- Never the same attempt twice (asked ids stay in Redis for GitHub's retention), and at most
  MAX_ATTEMPTS redeliveries per event, so one whose redeliveries keep failing stops being asked for.
Asking is claimed in Redis (SADD) before the request, so passes on several hosts never ask twice.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import AbstractSet, Iterable, Mapping

import redis

from bot.state import keys
from bot.adapters.github import GitHubApp, GitHubError, HookDelivery
from bot.intake.webhooks import HANDLED_ACTIONS, HANDLED_EVENTS

log = logging.getLogger(__name__)

# GitHub.com keeps deliveries 3 days; asking for an older one would only be refused.
LOOKBACK_SECONDS = 3 * 24 * 3600
# A pass re-reads this far behind the newest attempt the previous pass saw: GitHub lists an attempt only
# once it has finished (up to its 10 s timeout), and clocks differ a little.
OVERLAP_SECONDS = 600
MAX_ATTEMPTS = 5
# Asked at most per pass, so a long outage is caught up over a few passes rather than in one burst.
MAX_PER_PASS = 200


class Verdict(str, Enum):
    REDELIVER = "redeliver"
    PENDING = "pending"  # asked for its newest attempt; GitHub has not listed the result yet
    SEEN = "seen"  # Redis has its guid: queued or processed
    DELIVERED = "delivered"  # an attempt got a 2xx
    REFUSED = "refused"  # the newest attempt got a 4xx: the same request would be refused again
    GAVE_UP = "gave up"  # MAX_ATTEMPTS redeliveries asked for, all failed


@dataclass(frozen=True)
class Decision:
    """What to do with one event (all attempts sharing a guid); `delivery` is its newest attempt."""

    guid: str
    delivery: HookDelivery
    verdict: Verdict
    first_at: float  # when its first listed attempt was made
    asked: int  # redeliveries of it asked for so far


def retryable(status_code: int) -> bool:
    """True for failures where tfbot was not there to take the event, rather than refusing it."""
    return status_code == 0 or status_code >= 500 or status_code in (408, 429)


def decide(
    deliveries: Iterable[HookDelivery],
    seen: AbstractSet[str],
    asked: Mapping[str, AbstractSet[int]],
    handled: AbstractSet[str] = HANDLED_EVENTS,
) -> list[Decision]:
    """One decision per event of a handled kind, oldest event first (the order to redeliver them in)."""
    attempts_of: dict[str, list[HookDelivery]] = {}
    for d in deliveries:
        if d.guid and d.event in handled and d.action in HANDLED_ACTIONS.get(d.event, {d.action}):
            attempts_of.setdefault(d.guid, []).append(d)
    decisions = []
    for guid, attempts in attempts_of.items():
        attempts.sort(key=lambda a: (a.delivered_at, a.id))
        newest = attempts[-1]
        mine = asked.get(guid, frozenset())
        if guid in seen:
            verdict = Verdict.SEEN
        elif any(200 <= a.status_code < 300 for a in attempts):
            verdict = Verdict.DELIVERED
        elif not retryable(newest.status_code):
            verdict = Verdict.REFUSED
        elif newest.id in mine:
            verdict = Verdict.PENDING
        elif len(mine) >= MAX_ATTEMPTS:
            verdict = Verdict.GAVE_UP
        else:
            verdict = Verdict.REDELIVER
        decisions.append(Decision(guid, newest, verdict, attempts[0].delivered_at, len(mine)))
    return sorted(decisions, key=lambda x: (x.first_at, x.delivery.id))


@dataclass
class RedeliveryReport:
    """What one pass saw and did."""

    examined: int = 0  # delivery attempts listed
    decisions: list[Decision] = field(default_factory=list)
    asked: list[HookDelivery] = field(default_factory=list)  # redelivery requested in this pass
    errors: list[str] = field(default_factory=list)  # requests GitHub refused; tried again next pass

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for d in self.decisions:
            counts[d.verdict.value] = counts.get(d.verdict.value, 0) + 1
        detail = ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "none of a handled kind"
        return (f"{self.examined} delivery attempt(s) examined ({detail}); asked GitHub to redeliver "
                f"{len(self.asked)}" + (f"; {len(self.errors)} request(s) failed" if self.errors else ""))


def redeliver_missed(app: GitHubApp, conn: redis.Redis, now: float | None = None) -> RedeliveryReport:
    """List the App's recent deliveries and ask GitHub to redeliver each failed one tfbot never received."""
    now = time.time() if now is None else now
    since = now - LOOKBACK_SECONDS
    checked = conn.get(keys.redelivery_checked())
    if checked:
        since = max(since, float(checked) - OVERLAP_SECONDS)
    listed = app.hook_deliveries(since)
    report = RedeliveryReport(examined=len(listed))
    guids = sorted({d.guid for d in listed if d.guid})
    pipe = conn.pipeline(transaction=False)
    for guid in guids:
        pipe.exists(keys.delivery(guid))
        pipe.smembers(keys.redelivery_asked(guid))
    replies = pipe.execute()
    seen = {g for g, found in zip(guids, replies[0::2]) if found}
    asked = {g: {int(i) for i in ids} for g, ids in zip(guids, replies[1::2]) if ids}
    report.decisions = decide(listed, seen, asked)
    behind: list[float] = []  # attempts the next pass must still see
    for decision in report.decisions:
        d = decision.delivery
        label = f"{d.event}{'.' + d.action if d.action else ''} (guid {d.guid}, attempt {d.id})"
        if decision.verdict is Verdict.REFUSED:
            log.warning("webhook %s was answered %d: not redelivered, the same request would be refused again; "
                        "if the webhook secret was wrong then, fix it and redeliver it from the App's settings",
                        label, d.status_code)
        elif decision.verdict is Verdict.GAVE_UP:
            log.error("webhook %s still failed (%d) after %d redeliveries: not asked again", label, d.status_code,
                      decision.asked)
        elif decision.verdict is Verdict.REDELIVER:
            if len(report.asked) >= MAX_PER_PASS:
                behind.append(d.delivered_at)
            elif _ask(app, conn, decision, label, report):
                report.asked.append(d)
            else:
                behind.append(d.delivered_at)
    if listed:
        mark = min([max(d.delivered_at for d in listed), *behind])
        conn.set(keys.redelivery_checked(), repr(mark), ex=LOOKBACK_SECONDS)
    return report


def _ask(app: GitHubApp, conn: redis.Redis, decision: Decision, label: str, report: RedeliveryReport) -> bool:
    """Claim the attempt in Redis, then ask GitHub; True when asked (here or by a concurrent pass)."""
    key = keys.redelivery_asked(decision.guid)
    attempt = decision.delivery.id
    if not conn.sadd(key, attempt):
        return False  # another host's pass asked for it a moment ago; its outcome shows in the next listing
    conn.expire(key, LOOKBACK_SECONDS)
    try:
        app.redeliver(attempt)
    except GitHubError as exc:
        conn.srem(key, attempt)  # not asked after all: the next pass tries again
        report.errors.append(str(exc))
        log.warning("could not ask GitHub to redeliver webhook %s: %s; trying again next pass", label, exc)
        return False
    log.info("asked GitHub to redeliver webhook %s, which failed with %s %s ago", label,
             decision.delivery.status_code or "no answer", _age(time.time() - decision.first_at))
    return True


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{max(0, int(seconds))} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min"
    return f"{seconds / 3600:.1f} h"
