"""GitHub API faults: 5xx and secondary rate limits are retried with backoff; a longer outage delays the
report (retried as a job of its own) but loses nothing."""
from __future__ import annotations

import pytest

from tests.support.scenario import REPO

pytestmark = pytest.mark.e2e


def failed_posts(sc, status: int) -> int:
    """Failed posts of the report's comment: a REST comment, or the GraphQL request that carries it with the
    completed check run (bot/lifecycle/report_writes.py)."""
    return sum(1 for r in sc.fake.requests if r.method == "POST" and r.status == status
               and (r.path.endswith("/comments") or r.path == "/graphql"))


def test_5xx_and_rate_limits_are_retried(make_scenario):
    sc = make_scenario(github_settings={"retries": 3})
    sc.init_main({"network/main.tf": sc.config_for("network", {"vpc": "a"})})
    sc.start()
    sc.fake.fail_next(2, status=502, path_contains="/graphql", method="POST")
    sc.fake.fail_next(1, status=429, path_contains="/statuses", method="POST", headers={"Retry-After": "1"})
    pr = sc.open_pr("grow", {"network/main.tf": sc.config_for("network", {"vpc": "a", "subnet": "b"})})
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)
    assert failed_posts(sc, 502) == 2
    assert sum(1 for b in sc.bot_comments(pr) if "Plan:" in b) == 1  # retried, not duplicated
    # The status is the report's last write, after the comment: waited for before its 429 is looked for.
    assert sc.wait_status(sc.head(pr), "tfbot/plan")["state"] == "success"
    assert any(r.status == 429 for r in sc.fake.requests)


def test_an_outage_longer_than_the_retries_delays_the_report_and_loses_nothing(make_scenario):
    sc = make_scenario(github_settings={"retries": 1})
    sc.init_main({"network/main.tf": sc.config_for("network", {"vpc": "a"})})
    sc.start()
    sc.fake.fail_next(5, status=503, path_contains="/graphql", method="POST")
    pr = sc.open_pr("grow", {"network/main.tf": sc.config_for("network", {"vpc": "a", "subnet": "b"})})
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b, timeout=180)
    assert failed_posts(sc, 503) == 5
    assert sum(1 for b in sc.bot_comments(pr) if "Plan:" in b) == 1
    assert "report command" in sc.logs()  # the report job was retried by RQ, as the worker log shows
