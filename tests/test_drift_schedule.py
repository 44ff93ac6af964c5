"""When drift checks are due (pure): cron slots in UTC, a missed slot after downtime checked once, project globs."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bot.drift.schedule import due_slot, latest_slot, next_slot, projects_to_check, selected
from bot.models import Project


def at(text: str) -> float:
    """Unix seconds of a UTC time written as 2026-03-01 14:30:05."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


def test_the_latest_slot_is_the_last_fire_time_at_or_before_now():
    assert latest_slot("0 * * * *", at("2026-03-01 14:30:05")) == at("2026-03-01 14:00:00")
    assert latest_slot("0 * * * *", at("2026-03-01 14:00:00")) == at("2026-03-01 14:00:00")  # exactly at it
    assert latest_slot("0 * * * *", at("2026-03-01 13:59:59") + 0.9) == at("2026-03-01 13:00:00")
    assert latest_slot("*/15 * * * *", at("2026-03-01 14:44:59")) == at("2026-03-01 14:30:00")
    assert next_slot("*/15 * * * *", at("2026-03-01 14:44:59")) == at("2026-03-01 14:45:00")


def test_schedules_are_utc_whatever_the_local_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        assert latest_slot("30 3 * * *", at("2026-03-02 10:00:00")) == at("2026-03-02 03:30:00")
        assert latest_slot("0 9 * * 1", at("2026-03-04 12:00:00")) == at("2026-03-02 09:00:00")  # a Monday
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_a_slot_is_due_once_after_the_last_one_handled():
    hourly = "0 * * * *"
    handled = at("2026-03-01 14:00:00")
    assert due_slot(hourly, at("2026-03-01 14:00:20"), handled) is None
    assert due_slot(hourly, at("2026-03-01 14:59:59"), handled) is None
    assert due_slot(hourly, at("2026-03-01 15:00:00"), handled) == at("2026-03-01 15:00:00")
    assert due_slot(hourly, at("2026-03-01 15:00:15"), at("2026-03-01 15:00:00")) is None


def test_a_repository_never_handled_has_its_latest_slot_due_at_once():
    assert due_slot("0 3 * * *", at("2026-03-01 14:10:00"), None) == at("2026-03-01 03:00:00")


def test_missed_slots_after_downtime_are_checked_once_not_one_by_one():
    """A scheduler down from 10:30 to 15:20 missed the slots of 11:00 to 15:00: one check covers them, and a
    scheduler ticking every 15 s after that finds nothing more due until 16:00."""
    hourly = "0 * * * *"
    last = at("2026-03-01 10:00:00")
    due = []
    now = at("2026-03-01 15:20:00")
    while now < at("2026-03-01 16:30:00"):
        slot = due_slot(hourly, now, last)
        if slot is not None:
            due.append(slot)
            last = slot
        now += 15
    assert due == [at("2026-03-01 15:00:00"), at("2026-03-01 16:00:00")]


def test_a_schedule_moved_earlier_waits_for_its_next_fire_time():
    """Hourly until 14:00, then daily at 03:00: the 03:00 of today was before the last slot, so tomorrow's."""
    last = at("2026-03-01 14:00:00")
    assert due_slot("0 3 * * *", at("2026-03-01 14:30:00"), last) is None
    assert due_slot("0 3 * * *", at("2026-03-02 03:00:30"), last) == at("2026-03-02 03:00:00")


def test_a_bad_expression_is_a_value_error():
    with pytest.raises(ValueError):
        latest_slot("not cron", 0.0)


def test_globs_select_projects_by_name():
    projects = [Project(repo="acme/infra", name=n, dir=n) for n in ("network", "prod-db", "prod-web", "staging")]
    assert [p.name for p in projects_to_check(projects, ("*",))] == ["network", "prod-db", "prod-web", "staging"]
    assert [p.name for p in projects_to_check(projects, ("prod-*", "network"))] == ["network", "prod-db", "prod-web"]
    assert projects_to_check(projects, ()) == []
    assert projects_to_check(projects, ("Prod-*",)) == []  # case matters, as in project names
    assert selected("prod-db", ["prod-d?"]) and not selected("prod-db", ["prod"])
