"""The lock page, the run page and their JSON, through the real Flask app over a real Redis."""
from __future__ import annotations

import base64
import re
import time

import pytest

from bot.models import LockState, Project
from bot.state import keys
from bot.web import present
from tests.support.browser import make_web_app, seed_lock, seed_run, sign_in

XSS = "<script>alert(1)</script>"


@pytest.fixture
def web(redis_conn, tmp_path, app_private_key):
    app, services = make_web_app(redis_conn, tmp_path, app_private_key)
    return app, services


def rows_of(html: str) -> list[str]:
    """The (repo, dir, workspace) of each table row, in page order."""
    return re.findall(r'<tr class="[a-z]+" data-repo="([^"]*)" data-dir="([^"]*)" data-workspace="([^"]*)"', html)


def text_of(html: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped, entities kept escaped."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def test_empty_state_says_there_are_no_locks(web):
    app, _ = web
    html = app.test_client().get("/locks").get_data(as_text=True)
    assert "No locks are held." in html
    assert "<table" not in html


def test_locks_are_listed_oldest_first_with_everything_a_person_asks_about(web, redis_conn):
    app, _ = web
    seed_lock(redis_conn, dir="dns", pull=7, user="bob", title="Move the zone", age=30, state=LockState.PLAN_STALE)
    seed_lock(redis_conn, dir="network", pull=3, user="alice", title="Grow the VPC", age=3 * 86400,
              state=LockState.APPLY_FAILED, summary="Plan: 2 to add, 0 to change, 0 to destroy.", run_id="r-1")
    seed_lock(redis_conn, repo="acme/apps", dir="db", workspace="prod", pull=12, age=2 * 3600 + 300,
              state=LockState.APPLIED)
    html = app.test_client().get("/locks").get_data(as_text=True)
    assert rows_of(html) == [("acme/infra", "network", "default"), ("acme/apps", "db", "prod"),
                             ("acme/infra", "dns", "default")]
    network = html[html.index('data-dir="network"'):html.index('data-dir="db"')]
    assert '<span class="num">#3</span> <span class="title">Grow the VPC</span>' in network
    assert "by <strong>alice</strong>" in network
    assert ">3 days</time>" in network and 'class="age old"' in network
    assert re.search(r"since \d{4}-\d\d-\d\d \d\d:\d\d UTC", network)
    assert '<span class="badge bad">apply failed</span>' in network
    assert "Plan: 2 to add, 0 to change, 0 to destroy." in text_of(network)
    assert '<span class="add">2 to add</span>' in network and '<span class="zero">0 to change</span>' in network
    assert 'href="/runs/r-1"' in network
    assert 'href="https://github.com/acme/infra/pull/3"' in network
    assert ">2 h 5 min</time>" in html
    assert "applied, awaiting merge" in html and "plan stale" in html
    assert "<strong>3</strong> locks" in html


def test_filters_by_repository_and_by_text(web, redis_conn):
    app, _ = web
    seed_lock(redis_conn, dir="dns", pull=7, title="Move the zone")
    seed_lock(redis_conn, dir="network", pull=3, title="Grow the VPC", user="carol")
    seed_lock(redis_conn, repo="acme/apps", dir="db", pull=12, title="Grow the database")
    client = app.test_client()
    assert [r[1] for r in rows_of(client.get("/locks?repo=ACME/apps").get_data(as_text=True))] == ["db"]
    assert sorted(r[1] for r in rows_of(client.get("/locks?q=grow").get_data(as_text=True))) == ["db", "network"]
    assert [r[1] for r in rows_of(client.get("/locks?q=grow+carol").get_data(as_text=True))] == ["network"]
    assert [r[1] for r in rows_of(client.get("/locks?q=%237").get_data(as_text=True))] == ["dns"]
    html = client.get("/locks?repo=acme/infra&q=nothing-like-this").get_data(as_text=True)
    assert "No lock matches this filter." in html and "Show all 3 locks" in html


def test_github_values_are_escaped_everywhere(web, redis_conn):
    app, services = web
    seed_lock(redis_conn, pull=5, title=XSS, user='"><img src=x onerror=alert(2)>', run_id="r-x",
              summary="<b>bold</b>")
    redis_conn.set("tfbot:lock:acme/infra:default:network", redis_conn.get("tfbot:lock:acme/infra:default:network")
                   .replace(b"https://github.com/acme/infra/pull/5", b"javascript:alert(3)"))
    seed_run(services.records, "r-x", f"$ terraform plan\n{XSS}\n  \x1b[31m- gone\x1b[0m\n")
    client = app.test_client()
    sign_in(client)
    for path in ("/locks", "/runs/r-x"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in html and "<img src=x" not in html and "<b>bold" not in html, path
        assert "javascript:" not in html
    page = client.get("/locks").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="https://github.com/acme/infra/pull/5"' in page  # the unsafe link is replaced, not rendered
    run = client.get("/runs/r-x").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in run and "\x1b" not in run
    assert '<span class="del">  - gone</span>' in run


def test_a_drift_checks_run_log_names_no_pull_request(web):
    app, services = web
    seed_run(services.records, "d-1", "$ terraform plan\n", kind="drift", pull=0, user="tfbot",
             summary="Plan: 0 to add, 1 to change, 0 to destroy.")
    client = app.test_client()
    page = client.get("/runs/d-1").get_data(as_text=True)
    assert "<title>Drift check of network · acme/infra · tfbot</title>" in page
    assert "none: the default branch&#39;s head" in page and "/pull/0" not in page
    assert client.get("/api/runs/d-1").get_json()["pull_url"] is None


def test_an_apply_from_a_drift_issue_links_the_issue_not_a_pull_request(web):
    app, services = web
    seed_run(services.records, "da-1", "$ terraform apply\n", kind="apply", pull=12, pull_kind="drift", user="alice",
             summary="Apply complete! Resources: 0 added, 1 changed, 0 destroyed.")
    client = app.test_client()
    page = client.get("/runs/da-1").get_data(as_text=True)
    assert "<dt>Drift issue</dt>" in page and 'href="https://github.com/acme/infra/issues/12"' in page
    assert "<dt>Pull request</dt>" not in page and "/pull/12" not in page
    answer = client.get("/api/runs/da-1").get_json()
    assert (answer["pull_kind"], answer["pull_url"]) == ("drift", "https://github.com/acme/infra/issues/12")
    seed_run(services.records, "p-1", "$ terraform plan\n", kind="plan", pull=7)  # written before pull_kind existed
    assert client.get("/api/runs/p-1").get_json()["pull_url"] == "https://github.com/acme/infra/pull/7"
    assert "<dt>Pull request</dt>" in client.get("/runs/p-1").get_data(as_text=True)


def test_healthz_shows_what_the_recovery_pass_last_saw_of_github(web, redis_conn):
    from bot.state import github_health

    app, _ = web
    client = app.test_client()
    assert client.get("/healthz").get_json()["github"]["ok"] is None  # not checked yet
    github_health.record(redis_conn, "ConnectionError: api.github.com unreachable", at=time.time() - 30)
    shown = client.get("/healthz").get_json()["github"]
    assert shown["ok"] is False and "unreachable" in shown["error"] and 29 <= shown["checked_seconds_ago"] <= 60
    github_health.record(redis_conn, "")
    shown = client.get("/healthz").get_json()["github"]
    assert shown["ok"] is True and shown["error"] == "" and shown["checked_seconds_ago"] < 30


def test_every_response_carries_the_security_headers(web):
    app, _ = web
    client = app.test_client()
    for path in ("/locks", "/api/locks", "/login", "/metrics", "/runs/nope", "/static/tfbot.css"):
        headers = client.get(path).headers
        assert headers["Content-Security-Policy"] == (
            "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'self'"), path
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_pages_have_no_inline_script_or_style(web, redis_conn):
    app, _ = web
    seed_lock(redis_conn)
    client = app.test_client()
    sign_in(client)
    html = client.get("/locks").get_data(as_text=True)
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/locks.js" defer>']
    assert " style=" not in html and "<style" not in html and " onclick" not in html
    assert client.get("/static/locks.js").status_code == 200


def test_the_page_answers_304_when_nothing_changed(web, redis_conn):
    app, _ = web
    seed_lock(redis_conn)
    client = app.test_client()
    first = client.get("/locks")
    assert first.headers["ETag"]
    assert client.get("/locks", headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    seed_lock(redis_conn, dir="dns")
    assert client.get("/locks", headers={"If-None-Match": first.headers["ETag"]}).status_code == 200


def test_api_locks_matches_the_store(web, redis_conn):
    app, services = web
    old = seed_lock(redis_conn, dir="network", pull=3, age=7200, run_id="r-1", state=LockState.APPLYING)
    seed_lock(redis_conn, repo="acme/apps", dir="db", workspace="prod", pull=12, age=60)
    redis_conn.rpush("tfbot:lockq:acme/infra:default:network", '{"pull": 9}', '{"pull": 10}')
    answer = app.test_client().get("/api/locks").get_json()
    assert (answer["total"], answer["next"]) == (2, None)
    data = answer["locks"]
    assert [(d["repo"], d["dir"], d["workspace"]) for d in data] == [("acme/infra", "network", "default"),
                                                                     ("acme/apps", "db", "prod")]
    first = data[0]
    assert first == {
        "repo": "acme/infra", "project": "network", "dir": "network", "workspace": "default", "kind": "pull",
        "pull_number": 3, "pull_title": old.pull_title, "pull_url": "https://github.com/acme/infra/pull/3", "user": "alice",
        "locked_at": present.iso_utc(old.locked_at), "age_seconds": first["age_seconds"], "state": "applying",
        "summary": old.summary, "extra_args": [], "destroy": False, "run_id": "r-1", "run_url": "/runs/r-1",
        "waiting": 2,
    }
    assert 7199 <= first["age_seconds"] <= 7300
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["locked_at"])
    assert {(d["repo"], d["pull_number"]) for d in data} == {(lk.repo, lk.pull) for lk in services.locks.list()}
    assert [d["dir"] for d in app.test_client().get("/api/locks?repo=acme/apps").get_json()["locks"]] == ["db"]


def api_dirs(client, url: str) -> tuple[list[str], dict]:
    answer = client.get(url).get_json()
    return [d["dir"] for d in answer["locks"]], answer


def test_api_locks_pages_follow_a_cursor_that_survives_changes_between_pages(web, redis_conn):
    app, services = web
    for i, dir in enumerate(["a", "b", "c", "d", "e"]):
        seed_lock(redis_conn, dir=dir, pull=i + 1, age=500 - i * 10)  # a is the oldest
    client = app.test_client()
    first, answer = api_dirs(client, "/api/locks?limit=2")
    assert first == ["a", "b"] and answer["total"] == 5
    assert answer["next"].startswith("/api/locks?limit=2&cursor=")
    # Between two pages a lock already shown is released and a new one taken: the next page starts right after "b"
    # (an offset would skip "c"), and the new lock, the newest, comes last.
    assert services.locks.release(Project(repo="acme/infra", name="a", dir="a"), 1, None, mode="close").released
    seed_lock(redis_conn, dir="f", pull=6, age=1)
    second, answer = api_dirs(client, answer["next"])
    assert second == ["c", "d"] and answer["total"] == 5
    third, answer = api_dirs(client, answer["next"])
    assert third == ["e", "f"] and answer["next"] is None
    everything, answer = api_dirs(client, "/api/locks?limit=1000")
    assert everything == ["b", "c", "d", "e", "f"] and answer["next"] is None


def test_api_locks_filters_by_state_repository_and_text_on_every_page(redis_conn, tmp_path, app_private_key):
    app, _ = make_web_app(redis_conn, tmp_path, app_private_key, server={"public_url": "https://tfbot.example.com/"})
    seed_lock(redis_conn, dir="a", pull=1, age=50, state=LockState.PLANNED, title="Grow the VPC")
    seed_lock(redis_conn, dir="b", pull=2, age=40, state=LockState.APPLY_FAILED, title="Grow the zone")
    seed_lock(redis_conn, dir="c", pull=3, age=30, state=LockState.APPLIED, title="Grow the VPC again")
    seed_lock(redis_conn, repo="acme/apps", dir="d", pull=4, age=20, state=LockState.PLANNED, title="Grow")
    client = app.test_client()
    assert api_dirs(client, "/api/locks?state=planned")[0] == ["a", "d"]
    assert api_dirs(client, "/api/locks?state=Apply+failed&state=applied,+awaiting+merge")[0] == ["b", "c"]
    assert api_dirs(client, "/api/locks?state=planned&repo=acme/infra")[0] == ["a"]
    assert api_dirs(client, "/api/locks?q=vpc&state=applied,+awaiting+merge")[0] == ["c"]
    dirs, answer = api_dirs(client, "/api/locks?q=grow&repo=acme/infra&state=planned&state=apply+failed&limit=1")
    assert dirs == ["a"] and answer["total"] == 2
    # The next link is absolute under server.public_url and keeps every filter.
    assert answer["next"].startswith("https://tfbot.example.com/api/locks?repo=acme/infra&q=grow&state=planned&"
                                     "state=apply+failed&limit=1&cursor=")
    dirs, answer = api_dirs(client, answer["next"].removeprefix("https://tfbot.example.com"))
    assert dirs == ["b"] and answer["next"] is None


@pytest.mark.parametrize("query, named", [
    ("limit=0", "limit must be a whole number from 1 to 1000"), ("limit=1001", "limit"), ("limit=ten", "limit"),
    ("limit=-5", "limit"), ("limit=%C2%B2", "limit"), ("state=merged", "state 'merged' is not a lock state; use one of: planning, planned"),
    ("cursor=not-a-cursor", "cursor is not one this API gave out"),
    ("cursor=eyJhIjoxfQ", "cursor"),  # valid base64 of {"a":1}
    ("cursor=WyJ4IiwiYSIsImIiLCJjIl0", "cursor"),  # ["x","a","b","c"]: a time that is not a number
])
def test_api_locks_answers_a_bad_parameter_with_400_naming_it(web, redis_conn, query, named):
    app, _ = web
    seed_lock(redis_conn)
    answer = app.test_client().get(f"/api/locks?{query}")
    assert answer.status_code == 400
    assert answer.get_json()["status"] == 400 and named in answer.get_json()["message"]


def test_cursors_and_pages_are_values():
    from bot.models import LockInfo

    def lock(at: float, dir: str) -> LockInfo:
        return LockInfo(repo="acme/infra", dir=dir, workspace="default", project=dir, pull=1, user="u", locked_at=at,
                        token=1)

    ordered = [lock(1.5, "a"), lock(2.0, "b"), lock(2.0, "c"), lock(3.25, "d")]
    cursor = present.encode_cursor(ordered[1])
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)  # safe in a URL as it is
    assert present.decode_cursor(cursor) == (2.0, "acme/infra", "b", "default")
    assert present.page_after(ordered, None, 2) == (ordered[:2], ordered[1])
    assert present.page_after(ordered, present.decode_cursor(cursor), 2) == (ordered[2:], None)
    assert present.page_after(ordered, present.decode_cursor(present.encode_cursor(ordered[3])), 2) == ([], None)
    # A lock gone since the cursor was made: the page starts where it stood.
    assert present.page_after(ordered[2:], present.decode_cursor(cursor), 1) == ([ordered[2]], ordered[2])
    assert present.parse_limit(None) == present.API_LIMIT and present.parse_limit("1000") == 1000
    nested = base64.urlsafe_b64encode(b"[" * 2900).decode()  # deeper than Python's recursion limit
    for bad in ("x" * 5000, nested, "W10", "WzEsMiwzXQ", "W05hTiwiYSIsImIiLCJjIl0", "WzEuMCwxLDIsM10"):
        with pytest.raises(ValueError, match="cursor"):
            present.decode_cursor(bad)


def test_a_plan_made_with_extra_arguments_is_shown_with_them_and_a_destroy_plan_loudly(web, redis_conn):
    app, _ = web
    seed_lock(redis_conn, dir="network", age=120, extra_args="-target=terraform_data.a '-var=x=" + XSS + "'")
    seed_lock(redis_conn, dir="dns", age=60, extra_args="-destroy",
              summary="Plan: 0 to add, 0 to change, 2 to destroy.")
    seed_lock(redis_conn, dir="db", age=30)
    client = app.test_client()
    html = client.get("/locks").get_data(as_text=True)
    network = html[html.index('data-dir="network"'):html.index('data-dir="dns"')]
    dns = html[html.index('data-dir="dns"'):html.index('data-dir="db"')]
    plain = html[html.index('data-dir="db"'):]
    assert XSS not in html
    assert "with -target=terraform_data.a &#39;-var=x=&lt;script&gt;alert(1)&lt;/script&gt;&#39;" in text_of(network)
    assert "DESTROY" not in network and "DESTROY" not in plain and "with " not in text_of(plain)
    assert '<strong class="destroy">DESTROY plan</strong>' in dns and "with -destroy" in text_of(dns)
    data = {d["dir"]: d for d in client.get("/api/locks").get_json()["locks"]}
    assert data["network"]["extra_args"] == ["-target=terraform_data.a", f"-var=x={XSS}"]
    assert data["dns"]["extra_args"] == ["-destroy"] and data["dns"]["destroy"] is True
    assert data["db"]["extra_args"] == [] and data["db"]["destroy"] is False
    assert rows_of(client.get("/locks?q=-target").get_data(as_text=True)) == [("acme/infra", "network", "default")]


def test_a_run_made_with_extra_arguments_lists_them(web):
    app, services = web
    seed_run(services.records, "r-t", "$ terraform plan\n", extra_args=["-target=terraform_data.a", f"-var=x={XSS}"])
    seed_run(services.records, "r-p", "$ terraform plan\n")
    html = app.test_client().get("/runs/r-t").get_data(as_text=True)
    assert "<dt>Extra arguments</dt><dd><code>-target=terraform_data.a</code> <code>-var=x=&lt;script&gt;" in html
    assert XSS not in html
    assert "Extra arguments" not in app.test_client().get("/runs/r-p").get_data(as_text=True)


def test_run_urls_are_absolute_under_public_url(redis_conn, tmp_path, app_private_key):
    app, _ = make_web_app(redis_conn, tmp_path, app_private_key, server={"public_url": "https://tfbot.example.com"})
    seed_lock(redis_conn, run_id="r-9")
    assert app.test_client().get("/api/locks").get_json()["locks"][0]["run_url"] == (
        "https://tfbot.example.com/runs/r-9")


def test_run_output_is_for_signed_in_admins_only(web):
    app, services = web
    meta = seed_run(services.records, "20240101000000-abcdef12", "$ terraform plan\nsecret-looking output\n",
                    kind="apply", ok=False, summary="Error: boom")
    client = app.test_client()
    html = client.get("/runs/20240101000000-abcdef12").get_data(as_text=True)
    assert "secret-looking output" not in html
    assert "shown to signed-in admins only" in html
    assert "Apply of <span" in html and "failed" in html and "alice" in html and "12.5 s" in html
    data = client.get("/api/runs/20240101000000-abcdef12").get_json()
    assert data["output"] is None and data["output_hidden"] is True
    assert (data["kind"], data["repo"], data["pull_number"], data["sha"], data["ok"]) == (
        "apply", "acme/infra", 1, meta["sha"], False)
    assert data["started_at"] == present.iso_utc(meta["started_at"])

    sign_in(client)
    assert "secret-looking output" in client.get("/runs/20240101000000-abcdef12").get_data(as_text=True)
    assert client.get("/api/runs/20240101000000-abcdef12").get_json()["output"] == (
        "$ terraform plan\nsecret-looking output\n")


def test_public_logs_shows_output_to_everyone(redis_conn, tmp_path, app_private_key):
    app, services = make_web_app(redis_conn, tmp_path, app_private_key, server={"public_logs": True})
    seed_run(services.records, "r-2", "\x1b[1mPlan:\x1b[0m 1 to add")
    client = app.test_client()
    assert "Plan: 1 to add" in client.get("/runs/r-2").get_data(as_text=True)
    assert client.get("/api/runs/r-2").get_json()["output"] == "Plan: 1 to add"


def test_unknown_or_malformed_runs_are_404(web):
    app, _ = web
    client = app.test_client()
    assert client.get("/runs/nope").status_code == 404
    assert client.get("/runs/..%2f..%2fetc").status_code == 404
    assert client.get("/api/runs/nope").get_json()["status"] == 404


def test_redis_outage_is_a_503_page(tmp_path, app_private_key):
    import redis

    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    app, _ = make_web_app(dead, tmp_path, app_private_key)
    response = app.test_client().get("/locks")
    assert response.status_code == 503 and "cannot reach its Redis" in response.get_data(as_text=True)
    assert app.test_client().get("/api/locks").status_code == 503


def test_relative_and_absolute_times():
    assert [present.relative_age(s) for s in (5, 61, 3599, 3600, 3 * 3600 + 600, 11 * 3600 + 600, 86400, 9 * 86400)] \
        == ["just now", "1 min", "59 min", "1 h", "3 h 10 min", "11 h", "1 day", "9 days"]
    assert present.iso_utc(0) == "1970-01-01T00:00:00Z"
    assert present.human_utc(86400 + 3661) == "1970-01-02 01:01 UTC"
    assert [present.duration_text(s) for s in (0.25, 12.34, 245)] == ["250 ms", "12.3 s", "4 min 05 s"]


def test_only_http_links_survive():
    assert present.safe_url("https://github.com/a/b/pull/1") == "https://github.com/a/b/pull/1"
    for bad in ("javascript:alert(1)", "data:text/html,x", "//evil.example", "", "https:///nohost"):
        assert present.safe_url(bad) == "", bad
    assert present.github_web_url("https://ghe.example.com/api/v3") == "https://ghe.example.com"
    assert present.github_web_url("https://api.github.com") == "https://github.com"


def test_output_lines_are_classified_and_stripped_of_ansi():
    lines = present.output_lines("$ terraform plan\r\n  \x1b[32m+\x1b[0m resource\n  ~ update\n  -/+ replace\n"
                                 "│ Error: bad\nplain")
    assert lines == [("cmd", "$ terraform plan"), ("add", "  + resource"), ("chg", "  ~ update"),
                     ("rep", "  -/+ replace"), ("err", "│ Error: bad"), ("", "plain")]


def test_ten_thousand_locks_are_paged_oldest_first(web, redis_conn):
    """Correctness at size (the speed is measured by hand and in bench/, never asserted here)."""
    app, _ = web
    pipe = redis_conn.pipeline(transaction=False)
    now = time.time()  # once: a pause while seeding must not reorder the locks
    for i in range(10_000):
        seed_lock(redis_conn, repo=f"acme/r{i % 20}", dir=f"p{i}", pull=i + 1, locked_at=now - i, token=i + 1,
                  pipe=pipe)
    pipe.execute()
    # A version, as the lock scripts keep one: each request below then reads the locks once, not all 10,000 again.
    redis_conn.set(keys.lock_version(), 1)
    client = app.test_client()
    html = client.get("/locks").get_data(as_text=True)
    rows = rows_of(html)
    assert [r[1] for r in rows[:2]] == ["p9999", "p9998"] and len(rows) == 200
    assert "<strong>10000</strong> locks" in html and "Page 1 of 50" in html
    last = client.get("/locks?page=50").get_data(as_text=True)
    assert rows_of(last)[-1][1] == "p0"
    assert rows_of(client.get("/locks?page=999").get_data(as_text=True)) == rows_of(last)
    filtered = client.get("/locks?repo=acme/r3&page=2").get_data(as_text=True)
    assert "<strong>500</strong> locks" in filtered and "Page 2 of 3" in filtered
    assert all(r[0] == "acme/r3" for r in rows_of(filtered))
    first = client.get("/api/locks").get_json()
    assert (len(first["locks"]), first["total"]) == (100, 10_000)
    assert [d["dir"] for d in first["locks"][:2]] == ["p9999", "p9998"]
    seen, url, pages = [], "/api/locks?limit=1000", 0
    while url:
        answer = client.get(url).get_json()
        assert answer["total"] == 10_000
        seen += [d["dir"] for d in answer["locks"]]
        url, pages = answer["next"], pages + 1
    assert pages == 10 and seen == [f"p{i}" for i in range(9999, -1, -1)]


def test_the_whole_output_is_shown_even_past_the_comment_limit(web):
    from bot.render.comments import COMMENT_LIMIT

    app, services = web
    lines = [f'  + resource "terraform_data" "r{i}" {{ input = "{"x" * 40}" }}' for i in range(3000)]
    output = "\n".join(["$ terraform plan", *lines, "Plan: 3000 to add, 0 to change, 0 to destroy."])
    assert len(output) > 2 * COMMENT_LIMIT
    seed_run(services.records, "r-big", output)
    client = app.test_client()
    sign_in(client)
    html = client.get("/runs/r-big").get_data(as_text=True)
    assert "r2999" in html and "r0&#34;" in html and html.count('<span class="add">  + resource') == 3000
    assert client.get("/api/runs/r-big").get_json()["output"] == output


def test_every_page_template_and_asset_is_packaged():
    """A wheel (the Docker image installs one) carries only what package-data names: every file under bot/ that
    is not Python is matched by a glob of the package it lies in."""
    import fnmatch
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = Path(__file__).resolve().parents[1]
    package_data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]

    def packaged(path: Path) -> bool:
        package = next(p for p in path.parents if (p / "__init__.py").is_file())
        globs = package_data.get(".".join(package.relative_to(root).parts), [])
        relative = path.relative_to(package).as_posix()
        return any(fnmatch.fnmatch(relative, g) and relative.count("/") == g.count("/") for g in globs)

    files = [p for p in (root / "bot").rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert len(files) > 15 and {p.parent.name for p in files} >= {"web", "static", "templates", "builtin_workflows"}
    assert [p for p in files if not packaged(p)] == [], package_data
