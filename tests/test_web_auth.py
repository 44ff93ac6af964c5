"""Signing in, CSRF, and unlocking from the page: refused without an admin or a token, and then nothing changes."""
from __future__ import annotations

import json
import time

import pytest
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer
from werkzeug.security import generate_password_hash

from bot.state import audit
from bot.state.locks import LockStore
from bot.models import Project
from bot.queue import EVENTS_QUEUE
from bot.compose import worker_services
from bot.web.auth import safe_next
from tests.support.browser import ADMIN, ADMIN_PASSWORD, csrf_of, make_web_app, sign_in, web_config

NETWORK = Project(repo="acme/infra", name="network", dir="network")
DNS = Project(repo="acme/infra", name="dns", dir="dns")


@pytest.fixture
def web(redis_conn, tmp_path, app_private_key):
    return make_web_app(redis_conn, tmp_path, app_private_key)


def take(store: LockStore, project: Project, pull: int, user: str = "alice"):
    result = store.try_acquire(project, pull, user, pull_title=f"PR {pull}",
                               pull_url=f"https://github.com/acme/infra/pull/{pull}", waiter={"installation": 99})
    return result.lock


def unlock_form(html: str, project: str) -> dict[str, str]:
    """What the page's unlock button for `project` posts (the shared form's fields plus the button's value)."""
    import html as html_lib
    import re

    button = re.search(r'<button type="submit" form="unlock" name="lock" value="([^"]+)"[^>]*aria-label="Unlock '
                       + re.escape(project) + " ", html)
    assert button, f"no unlock button for {project}"
    return {"csrf_token": csrf_of(html), "next": "/locks", "lock": html_lib.unescape(button[1])}


def events(conn) -> list[Job]:
    queue = Queue(EVENTS_QUEUE, connection=conn, serializer=JSONSerializer)
    return [queue.fetch_job(job_id) for job_id in queue.job_ids]


def test_sign_in_needs_the_csrf_token_and_the_right_password(web):
    app, _ = web
    client = app.test_client()
    form = client.get("/login").get_data(as_text=True)
    token = csrf_of(form)
    assert client.post("/login", data={"name": ADMIN, "password": "x"}).status_code == 403
    wrong = client.post("/login", data={"csrf_token": token, "name": ADMIN, "password": "nope"})
    assert wrong.status_code == 401 and "Wrong name or password." in wrong.get_data(as_text=True)
    assert client.post("/login", data={"csrf_token": token, "name": "mallory", "password": "x"}).status_code == 401
    assert "Signed in as" not in client.get("/locks").get_data(as_text=True)

    ok = sign_in(client)
    assert ok.status_code == 303 and ok.headers["Location"] == "/locks"
    assert f"Signed in as <strong>{ADMIN}</strong>" in client.get("/locks").get_data(as_text=True)

    page = client.get("/locks").get_data(as_text=True)
    assert client.post("/logout", data={}).status_code == 403
    assert client.post("/logout", data={"csrf_token": csrf_of(page)}).status_code == 303
    assert "Signed in as" not in client.get("/locks").get_data(as_text=True)


def test_session_cookie_flags(web, redis_conn, tmp_path, app_private_key):
    app, _ = web
    cookie = sign_in(app.test_client()).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    client = app.test_client()  # the same app reached over https marks its cookie Secure
    token = csrf_of(client.get("/login", base_url="https://localhost").get_data(as_text=True))
    secure = client.post("/login", base_url="https://localhost",
                         data={"csrf_token": token, "name": ADMIN, "password": "correct horse battery staple"})
    assert "Secure" in secure.headers["Set-Cookie"]
    https_app, _ = make_web_app(redis_conn, tmp_path, app_private_key, server={"public_url": "https://tfbot.example"})
    assert "Secure" in sign_in(https_app.test_client()).headers["Set-Cookie"]


def test_unlock_is_refused_without_sign_in_or_csrf_and_nothing_changes(web, redis_conn):
    app, services = web
    take(services.locks, NETWORK, 1)
    before = redis_conn.get("tfbot:lock:acme/infra:default:network")
    admin = app.test_client()
    sign_in(admin)
    form = unlock_form(admin.get("/locks").get_data(as_text=True), "network")

    anonymous = app.test_client()
    assert anonymous.post("/locks/unlock", data=form).status_code == 401
    assert "Unlock" not in anonymous.get("/locks").get_data(as_text=True).split("</header>")[1]
    assert admin.post("/locks/unlock", data={**form, "csrf_token": ""}).status_code == 403
    assert admin.post("/locks/unlock", data={k: v for k, v in form.items() if k != "csrf_token"}).status_code == 403
    assert admin.post("/locks/unlock", data={**form, "csrf_token": form["csrf_token"][:-2] + "xx"}).status_code == 403
    other = app.test_client()
    sign_in(other)  # a token of another session does not pass either
    assert other.post("/locks/unlock", data=form).status_code == 403

    assert redis_conn.get("tfbot:lock:acme/infra:default:network") == before
    assert list(audit.entries(redis_conn)) == []
    assert events(redis_conn) == []


def test_unlock_releases_audits_and_queues_the_pr_comment(web, redis_conn):
    app, services = web
    take(services.locks, NETWORK, 1)
    take(services.locks, DNS, 2)
    client = app.test_client()
    sign_in(client)
    form = {**unlock_form(client.get("/locks").get_data(as_text=True), "network"), "reason": " PR abandoned "}
    answer = client.post("/locks/unlock", data=form)
    assert answer.status_code == 303 and answer.headers["Location"] == "/locks"
    assert services.locks.get(NETWORK) is None and services.locks.get(DNS).pull == 2
    page = client.get("/locks").get_data(as_text=True)
    assert "Unlocked network in acme/infra (held by #1)." in page
    assert 'data-dir="network"' not in page and 'data-dir="dns"' in page
    [entry] = audit.entries(redis_conn)
    assert (entry.action, entry.pull, entry.project, entry.user) == ("unlock", 1, "network", ADMIN)
    assert entry.detail == "PR abandoned — unlocked from the lock page"
    [job] = events(redis_conn)
    assert job.func_name == "bot.jobs.announce_unlock"
    lock, by, via, next_pull, reason = job.args
    assert (lock["pull"], lock["project"], by, via, next_pull, reason) == (
        1, "network", ADMIN, "from the lock page", None, "PR abandoned")


def test_unlock_hands_the_lock_to_the_next_pr_and_plans_it(web, redis_conn):
    app, services = web
    take(services.locks, NETWORK, 1)
    take(services.locks, NETWORK, 5, user="bob")  # waits in line
    client = app.test_client()
    sign_in(client)
    client.post("/locks/unlock", data=unlock_form(client.get("/locks").get_data(as_text=True), "network"))
    assert services.locks.get(NETWORK).pull == 5
    by_name = {job.func_name: job for job in events(redis_conn)}
    assert by_name["bot.jobs.plan_waiter"].args[1:3] == [5, 99]
    assert by_name["bot.jobs.announce_unlock"].args[3] == 5
    assert "handed to #5" in next(audit.entries(redis_conn)).detail


def test_unlock_of_a_lock_that_changed_hands_does_nothing(web, redis_conn):
    app, services = web
    take(services.locks, NETWORK, 1)
    client = app.test_client()
    sign_in(client)
    form = unlock_form(client.get("/locks").get_data(as_text=True), "network")
    services.locks.release(NETWORK, 1, None)
    take(services.locks, NETWORK, 7)  # someone else's lock now, with a new token
    answer = client.post("/locks/unlock", data=form, follow_redirects=True)
    assert "Nothing was unlocked" in answer.get_data(as_text=True)
    assert services.locks.get(NETWORK).pull == 7
    assert events(redis_conn) == []
    bad = {**form, "lock": json.dumps({"repo": "acme/infra"})}
    assert client.post("/locks/unlock", data=bad).status_code == 400


def test_without_admins_the_page_is_read_only(redis_conn, tmp_path, app_private_key):
    app, services = make_web_app(redis_conn, tmp_path, app_private_key, server={"admins": []})
    take(services.locks, NETWORK, 1)
    client = app.test_client()
    page = client.get("/locks").get_data(as_text=True)
    assert "Read-only" in page and "Sign in" not in page and 'form="unlock"' not in page
    login = client.get("/login").get_data(as_text=True)
    assert "No admins are configured" in login
    assert client.post("/login", data={"name": ADMIN, "password": "x"}).status_code == 403
    assert client.post("/locks/unlock", data={}).status_code == 401
    assert "Set-Cookie" not in client.get("/locks").headers  # anonymous readers get no session at all


def test_a_changed_password_or_removed_admin_signs_the_session_out(redis_conn, tmp_path, app_private_key):
    first, _ = make_web_app(redis_conn, tmp_path, app_private_key)
    client = first.test_client()
    sign_in(client)
    cookie = client.get_cookie("tfbot_session").value
    new_hash = generate_password_hash("another password", method="pbkdf2:sha256:1000")
    changed, _ = make_web_app(redis_conn, tmp_path, app_private_key,
                              server={"admins": [{"name": ADMIN, "password_hash": new_hash}]})
    same, _ = make_web_app(redis_conn, tmp_path, app_private_key)
    key_file = tmp_path / "data" / "web-secret-key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_text().strip()) == 64
    for app, signed_in in ((same, True), (changed, False)):
        other = app.test_client()
        other.set_cookie("tfbot_session", cookie)  # the same data_dir: the same signing key
        assert ("Signed in as" in other.get("/locks").get_data(as_text=True)) is signed_in


def copy_of_cookie(app, client):
    """A second browser holding a copy of `client`'s session cookie, as a thief who captured it would."""
    copy = app.test_client()
    copy.set_cookie("tfbot_session", client.get_cookie("tfbot_session").value)
    return copy


def test_a_cookie_copied_before_sign_out_is_signed_out_with_it(web, redis_conn):
    app, services = web
    take(services.locks, NETWORK, 1)
    admin = app.test_client()
    sign_in(admin)
    [kept] = redis_conn.keys("tfbot:signin:*")  # the sign-in is recorded; the cookie holds only its id
    assert json.loads(redis_conn.get(kept))["who"] == ADMIN and "pbkdf2" not in redis_conn.get(kept).decode()
    assert 12 * 3600 - 60 < redis_conn.ttl(kept) <= 12 * 3600
    admin.get("/locks")  # the admin browses (the session gets its CSRF token), then the cookie is copied
    stolen = copy_of_cookie(app, admin)
    page = stolen.get("/locks").get_data(as_text=True)
    assert f"Signed in as <strong>{ADMIN}</strong>" in page
    form = unlock_form(page, "network")  # the copy's CSRF token is the admin's: it passes

    assert admin.post("/logout", data={"csrf_token": csrf_of(page)}).status_code == 303
    assert redis_conn.keys("tfbot:signin:*") == []
    page = stolen.get("/locks").get_data(as_text=True)
    assert "Signed in as" not in page and 'form="unlock"' not in page
    refused = stolen.post("/locks/unlock", data=form)
    assert refused.status_code == 401 and "Sign in to unlock" in refused.get_data(as_text=True)
    assert services.locks.get(NETWORK).pull == 1 and list(audit.entries(redis_conn)) == [] and events(redis_conn) == []


def test_signing_in_again_ends_the_earlier_admin_sign_in(web, redis_conn):
    app, _ = web
    admin = app.test_client()
    sign_in(admin)
    stolen = copy_of_cookie(app, admin)
    admin.post("/logout", data={"csrf_token": csrf_of(admin.get("/locks").get_data(as_text=True))})
    sign_in(admin)
    assert "Signed in as" in admin.get("/locks").get_data(as_text=True)
    assert "Signed in as" not in stolen.get("/locks").get_data(as_text=True)
    again = copy_of_cookie(app, admin)
    token = csrf_of(admin.get("/locks").get_data(as_text=True))  # signed in, /login sends on: sign in from here
    assert admin.post("/login", data={"csrf_token": token, "name": ADMIN, "password": ADMIN_PASSWORD}).status_code == 303
    assert "Signed in as" not in again.get("/locks").get_data(as_text=True)
    assert len(redis_conn.keys("tfbot:signin:*")) == 1


def test_an_admin_sign_in_whose_record_expired_is_signed_out(web, redis_conn):
    app, services = web
    take(services.locks, NETWORK, 1)
    admin = app.test_client()
    sign_in(admin)
    form = unlock_form(admin.get("/locks").get_data(as_text=True), "network")
    [kept] = redis_conn.keys("tfbot:signin:*")
    redis_conn.pexpire(kept, 1)  # the session's time is up, as after twelve hours
    time.sleep(0.05)
    assert "Signed in as" not in admin.get("/locks").get_data(as_text=True)
    assert admin.post("/locks/unlock", data=form).status_code == 401
    assert services.locks.get(NETWORK).pull == 1 and events(redis_conn) == []


def test_a_cookie_naming_an_admin_without_a_record_is_not_signed_in(web, redis_conn):
    """The cookie of before sign-ins were recorded (the admin's name and password fingerprint, signed with the
    server's key) signs no one in: only a record in Redis does."""
    app, services = web
    take(services.locks, NETWORK, 1)
    admin = app.test_client()
    sign_in(admin)
    fingerprint = json.loads(redis_conn.get(redis_conn.keys("tfbot:signin:*")[0]))["fingerprint"]
    client = app.test_client()
    with client.session_transaction() as session:
        session["admin"], session["admin_fp"], session["csrf"] = ADMIN, fingerprint, "t" * 43
    assert "Signed in as" not in client.get("/locks").get_data(as_text=True)
    ref = unlock_form(admin.get("/locks").get_data(as_text=True), "network")["lock"]
    assert client.post("/locks/unlock", data={"csrf_token": "t" * 43, "lock": ref}).status_code == 401
    assert services.locks.get(NETWORK).pull == 1


def test_a_signed_in_session_gets_the_503_page_when_redis_is_down(web, tmp_path, app_private_key):
    """Finding the sign-in needs Redis: without it the page says so (503), drawn signed out, and nothing is
    unlocked."""
    import redis

    app, _ = web
    admin = app.test_client()
    sign_in(admin)
    form_page = admin.get("/locks").get_data(as_text=True)
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    cut_off, _ = make_web_app(dead, tmp_path, app_private_key)  # the same data_dir: the same signing key
    client = cut_off.test_client()
    client.set_cookie("tfbot_session", admin.get_cookie("tfbot_session").value)
    for answer in (client.get("/locks"), client.post("/locks/unlock", data={"csrf_token": csrf_of(form_page)})):
        text = answer.get_data(as_text=True)
        assert answer.status_code == 503 and "cannot reach its Redis" in text and "Signed in as" not in text


def test_redirects_after_forms_stay_on_this_site():
    assert safe_next("/locks?repo=acme/infra") == "/locks?repo=acme/infra"
    for bad in ("https://evil.example/", "//evil.example", "/\\evil.example", "", None, "locks", "/\t/evil.example",
                "/\n/evil.example", "/ /evil.example", "/\\/evil.example", "//evil", "https://evil", "/\x00/evil"):
        assert safe_next(bad) == "/locks", bad


@pytest.mark.parametrize("target", ["/\t/evil.example", "//evil", "https://evil", "/\\evil.example"])
def test_sign_in_never_redirects_off_site(web, target):
    app, _ = web
    client = app.test_client()
    assert client.get("/login", query_string={"next": target}).status_code == 200
    token = csrf_of(client.get("/login").get_data(as_text=True))
    from tests.support.browser import ADMIN_PASSWORD

    signed_in = client.post("/login", data={"csrf_token": token, "name": ADMIN, "password": ADMIN_PASSWORD,
                                            "next": target})
    assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/locks"
    # Once signed in, GET /login redirects straight away: to this site as well.
    again = client.get("/login", query_string={"next": target})
    assert again.status_code == 303 and again.headers["Location"] == "/locks"


def test_the_queued_announcement_comments_on_the_pr(web, redis_conn, tmp_path, fake_github, app_keys):
    """Run the job the page queued, in this process, with a worker's services against the fake GitHub."""
    fake_github.add_repo("acme/infra", "file:///nowhere", installation_id=99)
    fake_github.add_pull("acme/infra", 1, head_ref="grow", user="alice", head_sha="a" * 40, base_sha="b" * 40)
    app, services = web
    take(services.locks, NETWORK, 1)
    services.records.set_pull_field("acme/infra", 1, "installation", "99")
    client = app.test_client()
    sign_in(client)
    client.post("/locks/unlock", data={**unlock_form(client.get("/locks").get_data(as_text=True), "network"),
                                       "reason": "stuck since the outage @everyone `x`"})
    [job] = events(redis_conn)
    config = web_config(tmp_path, app_keys[0].decode(), github={
        "api_url": fake_github.base_url, "app_id": fake_github.app_id, "private_key": app_keys[0].decode(),
        "webhook_secret": "x", "app_slug": fake_github.app_slug, "retries": 0, "write_interval": 0})
    assert job.func(worker_services(config, redis_conn), *job.args) is True
    [comment] = fake_github.comments("acme/infra", 1)
    # The typed reason is code: it can neither format the comment nor mention anyone.
    assert (f"@{ADMIN} unlocked `network` from the lock page. Reason: `` stuck since the outage @everyone `x` ``."
            in comment["body"])
    assert comment["body"].startswith("<!-- tfbot:unlocked pr=1 sha= -->")


def test_admin_config_is_validated_without_echoing_secrets(tmp_path, app_private_key):
    from bot.config import ConfigError

    with pytest.raises(ConfigError) as err:
        web_config(tmp_path, app_private_key, server={
            "admins": [{"name": "ana", "password": "hunter2hunter2"},
                       {"name": "bad name!", "password_hash": "plaintext-oops"},
                       {"name": "Ana", "password_hash": generate_password_hash("x", method="pbkdf2:sha256:1000")}],
            "secret_key": "short", "public_logs": "maybe"})
    problems = "\n".join(err.value.problems)
    assert "server.admins[0].password: unknown key: store only a hash, made by `tfbot hash-password`" in problems
    assert "server.admins[0].password_hash: missing: a hash made by `tfbot hash-password`" in problems
    assert "server.admins[1].name: 1-64 letters" in problems
    assert "server.admins[1].password_hash: not a password hash" in problems
    assert "server.secret_key: too short" in problems and "server.public_logs: must be true or false" in problems
    assert "hunter2" not in problems and "plaintext-oops" not in problems and "short'" not in problems
    good = generate_password_hash("x", method="pbkdf2:sha256:1000")
    with pytest.raises(ConfigError) as err:
        web_config(tmp_path, app_private_key, server={"admins": [{"name": "ana", "password_hash": good},
                                                                  {"name": "Ana", "password_hash": good}]})
    assert err.value.problems == ["server.admins[1].name: duplicate admin 'Ana'"]
    config = web_config(tmp_path, app_private_key, server={"secret_key": "k" * 40, "public_logs": True})
    assert config.server.public_logs is True and "k" * 40 in config.secrets()
    assert "k" * 40 not in repr(config) and "pbkdf2" not in repr(config)
