"""Replay protection beyond delivery ids: the same event content is acted on once.

GitHub de-duplication by `X-GitHub-Delivery` stops a redelivery; this stops a replay of a captured,
validly signed body under a new delivery id from planning or applying twice. The fingerprint names what
the event asks for, so a genuinely new request (a new push, a new comment) is never mistaken for a replay.
"""
from __future__ import annotations

from typing import Any, Mapping

# How long an event's fingerprint is remembered: GitHub signs bodies without a timestamp, so a replay can
# come at any time; a week covers redeliveries and makes replays of older bodies meet a moved-on PR.
FINGERPRINT_TTL_SECONDS = 7 * 24 * 3600


def fingerprint(event: str, payload: Mapping[str, Any]) -> str | None:
    """A stable name for what this event asks tfbot to do, or None when it asks nothing replayable."""
    repo = (payload.get("repository") or {}).get("full_name", "")
    if event == "issue_comment":
        comment = payload.get("comment") or {}
        return f"comment:{repo}:{comment.get('id')}:{payload.get('action')}"
    if event == "pull_request":
        pull = payload.get("pull_request") or {}
        head = (pull.get("head") or {}).get("sha", "")
        action = payload.get("action")
        if action == "closed":
            return closed_fingerprint(repo, pull.get("number"), pull.get("merged"), pull.get("merge_commit_sha"))
        # reopened after a close, or ready_for_review after a draft, legitimately plan the same head again;
        # the time of the transition tells them apart.
        return f"pull:{repo}:{pull.get('number')}:{action}:{head}:{pull.get('updated_at')}"
    if event == "check_run" and payload.get("action") == "requested_action":
        # A press carries no id of its own. tfbot gives the check run a new external_id after acting on each press
        # (bot/lifecycle/handlers/check_runs.py), so the next press differs from this one, and a replay does not.
        run = payload.get("check_run") or {}
        identifier = (payload.get("requested_action") or {}).get("identifier")
        sender = (payload.get("sender") or {}).get("id")
        return f"press:{repo}:{run.get('id')}:{run.get('external_id')}:{identifier}:{sender}"
    return None


def closed_fingerprint(repo: str, number: object, merged: object = False, merge_sha: object = None) -> str:
    """The fingerprint of a PR's `closed` event. A handled `reopened` forgets the unmerged one (see
    handlers.pull_requests), so close, reopen, close is three events, while a replayed close stays one."""
    return f"pull:{repo}:{number}:closed:{merged}:{merge_sha}"
