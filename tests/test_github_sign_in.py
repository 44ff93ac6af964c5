"""Sign in with GitHub on the lock page, and unlocking as a GitHub user: the web app over a real Redis, the fake
GitHub serving the OAuth web flow, the user's installations and the permission API over HTTP, nothing of tfbot's
replaced.

The flow refuses a callback without this browser's state (missing, foreign, replayed, too old), says what GitHub
refused, refuses a user who reaches no installation of the App, and keeps no user token. Drawing the page asks
GitHub nothing (the buttons come from the roles listed for the user's own token at sign-in); an unlock asks GitHub
once, with the App's token, at that moment; unlock attempts are bounded per user per minute."""
from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from bot.adapters.github_roles import RepoRoles, RoleLookupError
from bot.config import ConfigError, GitHubConfig
from bot.models import LockState, Project
from bot.queue import EVENTS_QUEUE
from bot.state import audit, rate_limits
from bot.web.locks import UNLOCK_ATTEMPTS_PER_MINUTE
from tests.support.browser import ADMIN, csrf_of, github_settings, github_sign_in, make_web_app, seed_lock, \
    sign_in, web_config

REPO, OTHER = "acme/infra", "acme/dns"
NETWORK = Project(repo=REPO, name="network", dir="network")
PUBLIC_URL = "http://tfbot.example"


@pytest.fixture
def oauth(redis_conn, tmp_path, fake_github, app_keys):
    """(app, services, fake GitHub): tfbot's web app with GitHub sign-in, two repositories of installation 99."""
    for name in (REPO, OTHER):
        fake_github.add_repo(name, "file:///nowhere", installation_id=99)
    app, services = make_web_app(redis_conn, tmp_path, app_keys[0].decode(), server={"public_url": PUBLIC_URL},
                                 github=github_settings(fake_github, app_keys[0].decode()))
    return app, services, fake_github


def page_of(client) -> str:
    return client.get("/locks").get_data(as_text=True)


def unlock_buttons(html: str) -> list[str]:
    """The projects the page offers an unlock button for."""
    import re

    return sorted(re.findall(r'aria-label="Unlock (\S+) held by', html))


def unlock_form(html: str, repo: str, dir: str, reason: str = "the PR is abandoned") -> dict[str, str]:
    """What the unlock button of (repo, dir) posts; built from the lock's token when the page shows no button."""
    import html as html_lib
    import re

    for value in re.findall(r'name="lock" value="([^"]+)"', html):
        ref = json.loads(html_lib.unescape(value))
        if (ref["repo"], ref["dir"]) == (repo, dir):
            return {"csrf_token": csrf_of(html), "next": "/locks", "lock": html_lib.unescape(value), "reason": reason}
    raise AssertionError(f"no unlock button for {repo} {dir}")


def forged_form(client, lock, reason: str = "the PR is abandoned") -> dict[str, str]:
    """An unlock form for a lock the page shows no button for: what a hand-made POST would send."""
    html = page_of(client)
    ref = json.dumps({"repo": lock.repo, "dir": lock.dir, "workspace": lock.workspace, "token": lock.token})
    return {"csrf_token": csrf_of(html), "next": "/locks", "lock": ref, "reason": reason}


def signed_in(app, fake, login: str, role: str | None = None, repo: str = REPO):
    """(test client, the lock page it sees) of a browser signed in with GitHub as `login`, who has `role` on
    `repo` (when given)."""
    if role:
        fake.set_permission(repo, login, role)
    client = app.test_client()
    github_sign_in(client, fake, login)
    return client, page_of(client)


def nothing_recorded(conn) -> bool:
    """No audit entry and no queued job: an unlock that was refused left no trace but its answer."""
    return list(audit.entries(conn)) == [] and queued(conn) == []


def queued(conn) -> list:
    queue = Queue(EVENTS_QUEUE, connection=conn, serializer=JSONSerializer)
    return [queue.fetch_job(job_id) for job_id in queue.job_ids]


def redis_values(conn) -> list[tuple[bytes, str]]:
    """Every key in Redis and its value as text, whatever its type: where a kept token would land."""
    readers = {"string": conn.get, "hash": conn.hgetall, "list": lambda k: conn.lrange(k, 0, -1),
               "set": conn.smembers, "zset": lambda k: conn.zrange(k, 0, -1)}
    return [(key, repr(readers.get(conn.type(key).decode(), lambda k: b"")(key))) for key in conn.scan_iter("*")]


def cookie_data(app, client) -> dict:
    """The session cookie's content, as anyone holding the cookie can read it (signed, not encrypted)."""
    cookie = client.get_cookie("tfbot_session")
    return app.session_interface.get_signing_serializer(app).loads(cookie.value) if cookie else {}


# --- the flow -----------------------------------------------------------------------------------------------

def test_sign_in_with_github_names_the_user_and_keeps_no_token(oauth, redis_conn):
    app, _, fake = oauth
    fake.set_permission(REPO, "bob", "maintain")
    client = app.test_client()
    assert "Sign in with GitHub" in page_of(client)
    answer = github_sign_in(client, fake, "bob", next_path="/locks?repo=acme/infra")
    assert answer.status_code == 303 and answer.headers["Location"] == "/locks?repo=acme/infra"
    assert "Signed in as <strong>bob</strong> <span class=\"muted\">(GitHub)</span>" in page_of(client)

    authorize = next(r for r in fake.requests if r.path == "/login/oauth/authorize")
    assert authorize.query["redirect_uri"] == f"{PUBLIC_URL}/auth/github/callback"  # from server.public_url
    assert authorize.query["client_id"] == fake.client_id and len(authorize.query["state"]) >= 43
    exchange = next(r for r in fake.requests if r.path == "/login/oauth/access_token")
    assert exchange.body["client_secret"] == fake.client_secret and exchange.status == 200
    [token] = fake.user_tokens()
    # The user's token served for who they are and what they reach (their rate limit, not the App's), then is
    # kept nowhere: not in the cookie, not in Redis.
    assert [(r.method, r.path, r.auth) for r in fake.requests if not r.path.startswith("/login/")] == [
        ("GET", "/user", "user"), ("GET", "/user/installations", "user"),
        ("GET", "/user/installations/99/repositories", "user")]
    assert cookie_data(app, client)["github"] == "bob" and token not in json.dumps(cookie_data(app, client))
    assert not [k for k, value in redis_values(redis_conn) if token in value]

    [kept] = redis_conn.keys("tfbot:signin:*")  # the roles listed at sign-in, under the session's random id
    assert json.loads(redis_conn.get(kept)) == {"acme/infra": "maintain"}
    assert kept.decode().endswith(cookie_data(app, client)["github_sid"])

    page = page_of(client)
    assert client.post("/logout", data={"csrf_token": csrf_of(page)}).status_code == 303
    assert "Signed in as" not in page_of(client) and "github" not in cookie_data(app, client)
    assert redis_conn.keys("tfbot:signin:*") == []


def test_a_callback_without_this_browsers_state_is_refused(oauth):
    app, _, fake = oauth
    fake.set_permission(REPO, "bob", "read")
    fake.authorize_as("bob")
    client = app.test_client()

    def callback_url(started) -> tuple[str, dict[str, str]]:
        import requests

        back = requests.get(started.headers["Location"], allow_redirects=False, timeout=10)
        parts = urlsplit(back.headers["Location"])
        return parts.path, dict(parse_qsl(parts.query))

    path, query = callback_url(client.get("/auth/github"))
    stranger = app.test_client()  # someone else's browser: no state in its session
    assert stranger.get(path, query_string=query).status_code == 403
    forged = client.get(path, query_string={**query, "state": query["state"][:-2] + "xx"})
    assert forged.status_code == 403 and "did not start in this browser" in forged.get_data(as_text=True)
    # The forged try spent the state: the true callback after it is refused too.
    assert client.get(path, query_string=query).status_code == 403
    assert "Signed in as" not in page_of(client) and "Signed in as" not in page_of(stranger)

    path, query = callback_url(client.get("/auth/github"))
    assert client.get(path, query_string=query).status_code == 303
    client.get("/auth/github")  # a new state, in a session signed in as bob
    assert client.get(path, query_string=query).status_code == 403  # the used one does not come back

    path, query = callback_url(client.get("/auth/github"))
    with client.session_transaction() as session:
        session["oauth_started"] = time.time() - 601
    assert client.get(path, query_string=query).status_code == 403  # older than ten minutes


def test_github_refusals_are_said_and_sign_no_one_in(oauth, redis_conn, tmp_path, app_keys):
    app, _, fake = oauth
    fake.set_permission(REPO, "bob", "read")
    client = app.test_client()
    cancelled = github_sign_in(client, fake, None)
    assert cancelled.status_code == 303
    assert "Sign-in with GitHub was cancelled: The user has denied your application access." in page_of(client)

    client.get("/auth/github")
    with client.session_transaction() as session:
        state = session["oauth_state"]
    missing = client.get("/auth/github/callback", query_string={"state": state})
    assert missing.status_code == 400 and "GitHub sent no sign-in code back" in missing.get_data(as_text=True)

    client.get("/auth/github")
    with client.session_transaction() as session:
        state = session["oauth_state"]
    bad = client.get("/auth/github/callback", query_string={"state": state, "code": "0" * 20})
    assert bad.status_code == 502
    assert "GitHub refused the sign-in: The code passed is incorrect or expired." in bad.get_data(as_text=True)

    fake.fail_next(1, 503, path_contains="/login/oauth/access_token")
    down = github_sign_in(client, fake, "bob")
    assert down.status_code == 502 and "GitHub answered 503 while exchanging the sign-in code" in down.get_data(
        as_text=True)
    fake.fail_next(1, 503, path_contains="/user/installations")
    down = github_sign_in(client, fake, "bob")  # who bob may be is unknown: not signed in
    assert down.status_code == 502 and "GitHub answered 503 while listing where tfbot is installed for you" in \
        down.get_data(as_text=True)

    wrong, _ = make_web_app(redis_conn, tmp_path, app_keys[0].decode(), github=github_settings(
        fake, app_keys[0].decode(), client_secret="not-the-secret"))
    other = wrong.test_client()
    refused = github_sign_in(other, fake, "bob")
    text = refused.get_data(as_text=True)
    assert refused.status_code == 502 and "GitHub refused tfbot&#39;s client ID or secret" in text
    assert "not-the-secret" not in text
    assert "Signed in as" not in page_of(client) and "Signed in as" not in page_of(other)


def test_without_a_client_id_there_is_no_github_sign_in(redis_conn, tmp_path, app_private_key):
    app, _ = make_web_app(redis_conn, tmp_path, app_private_key)
    client = app.test_client()
    assert "Sign in with GitHub" not in page_of(client) and "Sign in with GitHub" not in client.get(
        "/login").get_data(as_text=True)
    assert client.get("/auth/github").status_code == 404
    assert client.get("/auth/github/callback", query_string={"code": "x", "state": "y"}).status_code == 404


def test_client_id_and_secret_come_together_and_the_secret_is_masked(tmp_path, app_private_key):
    for alone, missing in (({"client_id": "Iv1.abc"}, "client_secret"), ({"client_secret": "s3cret-value"},
                                                                        "client_id")):
        with pytest.raises(ConfigError) as err:
            web_config(tmp_path, app_private_key, github={"app_id": 1, "private_key": app_private_key,
                                                          "webhook_secret": "x", **alone})
        assert err.value.problems[0].startswith(f"github.{missing}: missing: GitHub sign-in needs")
        assert "s3cret-value" not in "\n".join(err.value.problems)
    config = web_config(tmp_path, app_private_key, github={"app_id": 1, "private_key": app_private_key,
                                                           "webhook_secret": "x", "client_id": "Iv1.abc",
                                                           "client_secret": "s3cret-value",
                                                           "web_url": "https://ghe.example/"})
    assert config.github.sign_in and config.github.web_url == "https://ghe.example"
    assert "s3cret-value" in config.secrets() and "s3cret-value" not in repr(config)
    assert config.server.unlock_permission == "maintain"
    with pytest.raises(ConfigError) as err:
        web_config(tmp_path, app_private_key, server={"unlock_permission": "triage"},
                   github={"app_id": 1, "private_key": app_private_key, "webhook_secret": "x", "web_url": "github"})
    assert [p.split(":")[0] for p in err.value.problems] == ["github.web_url", "server.unlock_permission"]
    assert "https://github.com or https://HOST" in err.value.problems[0]


def test_the_github_session_cookie_is_hardened(redis_conn, tmp_path, fake_github, app_keys):
    fake_github.add_repo(REPO, "file:///nowhere", installation_id=99)
    app, _ = make_web_app(redis_conn, tmp_path, app_keys[0].decode(), server={"public_url": "https://tfbot.example"},
                          github=github_settings(fake_github, app_keys[0].decode()))
    client = app.test_client()
    started = client.get("/auth/github", base_url="https://tfbot.example")
    query = dict(parse_qsl(urlsplit(started.headers["Location"]).query))
    assert query["redirect_uri"] == "https://tfbot.example/auth/github/callback"
    cookie = started.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


# --- unlocking as a GitHub user --------------------------------------------------------------------------------

def test_a_maintainer_unlocks_with_a_reason_and_it_is_recorded(oauth, redis_conn):
    app, services, fake = oauth
    lock = seed_lock(redis_conn, REPO, "network", pull=1)
    seed_lock(redis_conn, OTHER, "zone", pull=2)
    client, html = signed_in(app, fake, "bob", "maintain")
    assert unlock_buttons(html) == ["network"]  # not the repository where bob has no role
    answer = client.post("/locks/unlock", data=unlock_form(html, REPO, "network", reason=" stuck since Friday "))
    assert answer.status_code == 303
    assert services.locks.get(NETWORK) is None
    assert "Unlocked network in acme/infra (held by #1)." in page_of(client)
    [entry] = audit.entries(redis_conn)
    assert (entry.action, entry.user, entry.pull, entry.project) == ("unlock", "bob", 1, "network")
    assert entry.detail == "stuck since Friday — unlocked from the lock page, signed in with GitHub"
    [job] = queued(redis_conn)
    assert job.func_name == "bot.jobs.announce_unlock"
    assert job.args[1:] == ["bob", "from the lock page, signed in with GitHub", None, "stuck since Friday"]
    assert job.args[0]["token"] == lock.token


def test_a_writer_is_refused_and_nothing_changes(oauth, redis_conn):
    app, services, fake = oauth
    lock = seed_lock(redis_conn, REPO, "network", pull=1)
    before = redis_conn.get("tfbot:lock:acme/infra:default:network")
    client, html = signed_in(app, fake, "walt", "write")
    assert "Signed in as <strong>walt</strong>" in html and unlock_buttons(html) == [] and 'id="unlock"' not in html
    refused = client.post("/locks/unlock", data=forged_form(client, lock))
    assert refused.status_code == 403
    assert ("GitHub gives walt the write role on acme/infra; unlocking from this page takes maintain or more "
            "(server.unlock_permission)") in refused.get_data(as_text=True)
    assert redis_conn.get("tfbot:lock:acme/infra:default:network") == before
    assert nothing_recorded(redis_conn)


def test_a_role_lowered_after_the_page_was_drawn_is_refused_at_the_unlock(oauth, redis_conn):
    app, services, fake = oauth
    seed_lock(redis_conn, REPO, "network", pull=1)
    client, html = signed_in(app, fake, "mia", "maintain")
    assert unlock_buttons(html) == ["network"]
    fake.set_permission(REPO, "mia", "triage")  # demoted on GitHub; the page still shows the button it drew
    answer = client.post("/locks/unlock", data=unlock_form(html, REPO, "network"))
    assert answer.status_code == 403 and "GitHub gives mia the triage role" in answer.get_data(as_text=True)
    assert services.locks.get(NETWORK) is not None
    assert nothing_recorded(redis_conn)
    assert unlock_buttons(page_of(client)) == []  # the fresh answer replaced the kept one


def test_a_reason_is_required_and_bounded(oauth, redis_conn):
    app, services, fake = oauth
    seed_lock(redis_conn, REPO, "network", pull=1)
    client, html = signed_in(app, fake, "bob", "maintain")
    assert 'placeholder="recorded in the audit trail and posted on the PR" required>' in html
    for reason, why in (("  ", "Give a reason for the unlock"), ("x" * 501, "longer than 500 characters")):
        answer = client.post("/locks/unlock", data=unlock_form(html, REPO, "network", reason=reason))
        assert answer.status_code == 400 and why in answer.get_data(as_text=True)
    assert services.locks.get(NETWORK) is not None and nothing_recorded(redis_conn)


def test_a_flagged_lock_takes_githubs_admin_role(oauth, redis_conn):
    app, services, fake = oauth
    applied = seed_lock(redis_conn, REPO, "network", pull=1, state=LockState.APPLIED)
    client, html = signed_in(app, fake, "bob", "maintain")
    assert unlock_buttons(html) == []
    answer = client.post("/locks/unlock", data=forged_form(client, applied), follow_redirects=True)
    assert "Only a tfbot admin or someone with the admin role on acme/infra may release such a lock" in \
        answer.get_data(as_text=True)
    assert services.locks.get(NETWORK) is not None and nothing_recorded(redis_conn)

    admin, html = signed_in(app, fake, "ada", "admin")
    assert unlock_buttons(html) == ["network"]
    assert admin.post("/locks/unlock", data=unlock_form(html, REPO, "network", reason="reverted by hand")
                      ).status_code == 303
    assert services.locks.get(NETWORK) is None
    [entry] = audit.entries(redis_conn)
    assert entry.user == "ada" and "infrastructure and default branch differed" in entry.detail


def test_a_lock_flagged_between_the_check_and_the_release_stays(oauth, redis_conn):
    """The release script, not only the read before it, keeps a lock that became flagged from a maintainer."""
    from bot.state.locks import LockStore

    class ApplyFinishesMeanwhile(LockStore):
        def get(self, project):
            lock = super().get(project)
            if lock is not None:  # an apply of the PR ends between this read and the release
                seed_lock(redis_conn, lock.repo, lock.dir, pull=lock.pull, token=lock.token,
                          state=LockState.APPLIED)
            return lock

    app, services, fake = oauth
    seed_lock(redis_conn, REPO, "network", pull=1)
    client, html = signed_in(app, fake, "bob", "maintain")
    services.locks = ApplyFinishesMeanwhile(redis_conn)
    answer = client.post("/locks/unlock", data=unlock_form(html, REPO, "network"), follow_redirects=True)
    assert "may release such a lock" in answer.get_data(as_text=True)
    assert services.locks.get(NETWORK).state is LockState.APPLIED
    assert nothing_recorded(redis_conn)


def test_github_down_at_the_unlock_refuses_it(oauth, redis_conn):
    app, services, fake = oauth
    seed_lock(redis_conn, REPO, "network", pull=1)
    client, html = signed_in(app, fake, "bob", "maintain")
    fake.fail_next(1, 502, path_contains="/collaborators/bob/permission")
    answer = client.post("/locks/unlock", data=unlock_form(html, REPO, "network"))
    assert answer.status_code == 503 and "nothing was unlocked" in answer.get_data(as_text=True)
    assert services.locks.get(NETWORK) is not None and queued(redis_conn) == []


def test_unlock_permission_write_lets_writers_unlock(redis_conn, tmp_path, fake_github, app_keys):
    fake_github.add_repo(REPO, "file:///nowhere", installation_id=99)
    app, services = make_web_app(redis_conn, tmp_path, app_keys[0].decode(), server={"unlock_permission": "write"},
                                 github=github_settings(fake_github, app_keys[0].decode()))
    seed_lock(redis_conn, REPO, "network", pull=1)
    assert unlock_buttons(signed_in(app, fake_github, "tia", "triage")[1]) == []
    client, html = signed_in(app, fake_github, "walt", "write")
    assert client.post("/locks/unlock", data=unlock_form(html, REPO, "network")).status_code == 303
    assert services.locks.get(NETWORK) is None


def test_an_admin_session_is_unchanged_by_github_sign_in(oauth, redis_conn):
    """Local admins keep working beside GitHub sign-in, and unlock any lock without asking GitHub."""
    app, services, fake = oauth
    seed_lock(redis_conn, REPO, "network", pull=1)
    seed_lock(redis_conn, OTHER, "zone", pull=2)
    client = app.test_client()
    login = client.get("/login").get_data(as_text=True)
    assert "Sign in with GitHub" in login and "Admin sign-in" in login
    sign_in(client)
    fake.reset_requests()
    html = page_of(client)
    assert f"Signed in as <strong>{ADMIN}</strong>" in html and unlock_buttons(html) == ["network", "zone"]
    assert client.post("/locks/unlock", data=unlock_form(html, OTHER, "zone", reason="")).status_code == 303
    assert fake.requests == []


# --- who may sign in, and what a session can cost the App ---------------------------------------------------

def app_requests(fake) -> list:
    """Requests the fake GitHub answered with the App's credentials (its JWT or an installation token): what
    counts against the App's rate limit."""
    return [r for r in fake.requests if r.auth in ("jwt", "installation")]


def test_a_user_who_reaches_no_installation_cannot_sign_in(oauth, redis_conn):
    app, _, fake = oauth
    fake.add_repo("elsewhere/tools", "file:///nowhere")  # no installation of the App on `elsewhere`
    fake.set_permission("elsewhere/tools", "eve", "admin")
    fake.add_repo("acme/public-site", "file:///nowhere", installation_id=99, private=False)  # eve may read it
    client = app.test_client()
    refused = github_sign_in(client, fake, "eve")
    text = refused.get_data(as_text=True)
    assert refused.status_code == 403
    assert "Your GitHub account (eve) has no access to a repository where tfbot is installed" in text
    assert "Signed in as" not in page_of(client) and "github" not in cookie_data(app, client)
    assert redis_conn.keys("tfbot:signin:*") == []
    # GitHub was asked with eve's own token only; the App spent nothing on her.
    assert [(r.path, r.auth) for r in fake.requests if not r.path.startswith("/login/")] == [
        ("/user", "user"), ("/user/installations", "user")]
    assert app_requests(fake) == []
    # A post without a session is no unlock attempt either.
    assert client.post("/locks/unlock", data={"lock": "{}"}).status_code == 401

    fake.set_permission(REPO, "eve", "read")  # given access to one repository of the installation: she may
    assert github_sign_in(client, fake, "eve").status_code == 303
    assert "Signed in as <strong>eve</strong>" in page_of(client)


def test_the_page_asks_github_nothing_however_many_repositories(oauth, redis_conn):
    app, _, fake = oauth
    repos = [f"acme/svc-{i:02d}" for i in range(120)]  # more than one page of GitHub's listing
    for i, name in enumerate(repos):
        fake.add_repo(name, "file:///nowhere", installation_id=99)
        fake.set_permission(name, "bob", "maintain" if i % 2 == 0 else "write")
        seed_lock(redis_conn, name, "network", pull=i + 1)
    client = app.test_client()
    github_sign_in(client, fake, "bob")
    listed = [r for r in fake.requests if r.path.startswith("/user/installations/99/repositories")]
    assert [(r.query.get("page"), r.auth) for r in listed] == [("1", "user"), ("2", "user")]
    assert app_requests(fake) == []
    fake.reset_requests()
    for _ in range(3):  # the auto-refresh, and two filters
        page_of(client)
    for query in ({"repo": "acme/svc-07"}, {"q": "network"}):
        client.get("/locks", query_string=query)
    html = page_of(client)
    assert fake.requests == []  # not one call to GitHub, with any token
    # The buttons the page drew came from the roles listed at sign-in: the repositories where bob may maintain.
    assert len(unlock_buttons(html)) == 60
    assert "acme/svc-00" in html and unlock_form(html, "acme/svc-00", "network")
    with pytest.raises(AssertionError):
        unlock_form(html, "acme/svc-01", "network")


def test_an_unlock_asks_github_once_at_that_moment(oauth, redis_conn):
    app, services, fake = oauth
    seed_lock(redis_conn, REPO, "network", pull=1)
    seed_lock(redis_conn, OTHER, "zone", pull=2)
    fake.set_permission(OTHER, "bob", "maintain")
    client, html = signed_in(app, fake, "bob", "maintain")
    fake.reset_requests()
    assert client.post("/locks/unlock", data=unlock_form(html, REPO, "network")).status_code == 303
    asked = [r.path for r in fake.requests if r.path.endswith("/permission")]
    assert asked == ["/repos/acme/infra/collaborators/bob/permission"]
    assert {r.path for r in app_requests(fake)} <= {"/repos/acme/infra/installation",
                                                    "/app/installations/99/access_tokens",
                                                    "/repos/acme/infra/collaborators/bob/permission"}
    fake.reset_requests()
    page_of(client)
    assert fake.requests == []  # the page after the unlock asks nothing either
    assert services.locks.get(NETWORK) is None


def test_unlock_attempts_are_bounded_per_user_per_minute(oauth, redis_conn):
    app, services, fake = oauth
    lock = seed_lock(redis_conn, REPO, "network", pull=1)
    walt, _ = signed_in(app, fake, "walt", "write")
    form = forged_form(walt, lock)
    fake.reset_requests()
    for _ in range(UNLOCK_ATTEMPTS_PER_MINUTE):
        assert walt.post("/locks/unlock", data=form).status_code == 403  # asked GitHub: a writer may not
    assert len([r for r in fake.requests if r.path.endswith("/permission")]) == UNLOCK_ATTEMPTS_PER_MINUTE
    fake.reset_requests()
    limited = walt.post("/locks/unlock", data=form)
    text = limited.get_data(as_text=True)
    assert limited.status_code == 429 and 0 < int(limited.headers["Retry-After"]) <= 60
    assert f"walt tried to unlock more than {UNLOCK_ATTEMPTS_PER_MINUTE} times this minute" in text
    assert fake.requests == []  # refused before asking GitHub
    # The count is per user: a maintainer signed in beside walt unlocks.
    bob, html = signed_in(app, fake, "bob", "maintain")
    assert bob.post("/locks/unlock", data=unlock_form(html, REPO, "network")).status_code == 303
    assert services.locks.get(NETWORK) is None


def test_the_attempt_counter_starts_again_with_each_window(redis_conn):
    assert [rate_limits.take(redis_conn, "unlock", "Walt", 2, 1)[0] for _ in range(3)] == [True, True, False]
    assert rate_limits.take(redis_conn, "unlock", "walt", 2, 1)[0] is False  # logins are case-insensitive
    assert rate_limits.take(redis_conn, "unlock", "bob", 2, 1)[0] is True
    time.sleep(1.2)
    assert rate_limits.take(redis_conn, "unlock", "walt", 2, 1) == (True, 1)


def test_without_the_listing_every_lock_offers_a_button_and_github_decides(oauth, redis_conn):
    app, services, fake = oauth
    seed_lock(redis_conn, REPO, "network", pull=1)
    seed_lock(redis_conn, OTHER, "zone", pull=2)
    fake.set_permission(REPO, "bob", "maintain")
    fake.fail_next(1, 502, path_contains="/user/installations/99/repositories")
    client = app.test_client()
    assert github_sign_in(client, fake, "bob").status_code == 303  # bob reaches the installation: signed in
    html = page_of(client)
    assert unlock_buttons(html) == ["network", "zone"] and redis_conn.keys("tfbot:signin:*") == []
    refused = client.post("/locks/unlock", data=unlock_form(html, OTHER, "zone"))
    assert refused.status_code == 403 and "GitHub gives bob the none role on acme/dns" in refused.get_data(
        as_text=True)
    assert client.post("/locks/unlock", data=unlock_form(html, REPO, "network")).status_code == 303
    assert services.locks.get(NETWORK) is None


def test_roles_are_asked_with_a_read_only_token_of_one_repository(fake_github, app_keys):
    for name in (REPO, OTHER):
        fake_github.add_repo(name, "file:///nowhere", installation_id=99)
    fake_github.set_permission(REPO, "bob", "maintain")
    config = GitHubConfig(api_url=fake_github.base_url, app_id=fake_github.app_id, private_key=app_keys[0].decode(),
                          webhook_secret="x")
    roles = RepoRoles(config)
    assert roles.role(REPO, "bob") == "maintain"  # GitHub's `permission` says write: role_name is read
    assert roles.role(REPO, "nobody-at-all") == "none"
    assert roles.role(OTHER, "bob") == "none"
    tokens = fake_github.issued_tokens()
    assert [(t["permissions"], t["repositories"]) for t in tokens] == [
        ({"metadata": "read"}, ["acme/infra"]), ({"metadata": "read"}, ["acme/dns"])]
    fake_github.set_permission(REPO, "bob", "admin")
    assert roles.role(REPO, "bob") == "admin" and len(fake_github.issued_tokens()) == 2  # token reused
    fake_github.expire_tokens()  # GitHub ends them early: a new one is minted once
    assert roles.role(REPO, "bob") == "admin" and len(fake_github.issued_tokens()) == 3
    with pytest.raises(RoleLookupError, match="installation on acme/elsewhere: GitHub answered 404"):
        roles.role("acme/elsewhere", "bob")


def test_github_enterprise_signs_in_on_its_web_host_and_asks_its_api(redis_conn, tmp_path, app_keys):
    """GitHub Enterprise Server: sign-in pages at https://HOST (`github.web_url`), the API under /api/v3."""
    from tests.support.fake_github import FakeGitHub

    private_pem, public_pem = app_keys
    with FakeGitHub(1234, public_pem, private_key_pem=private_pem, api_prefix="/api/v3") as fake:
        fake.add_installation(99, "acme")
        fake.add_repo(REPO, "file:///nowhere", installation_id=99)
        app, services = make_web_app(redis_conn, tmp_path, private_pem.decode(),
                                     github=github_settings(fake, private_pem.decode()))
        assert services.config.github.api_url.endswith("/api/v3") and not services.config.github.web_url.endswith(
            "/api/v3")
        seed_lock(redis_conn, REPO, "network", pull=1)
        client, html = signed_in(app, fake, "bob", "maintain")
        assert "Signed in as <strong>bob</strong>" in html and unlock_buttons(html) == ["network"]
        assert {r.raw_path for r in fake.requests} >= {"/login/oauth/authorize", "/login/oauth/access_token",
                                                       "/user", "/user/installations",
                                                       "/user/installations/99/repositories"}
        assert client.post("/locks/unlock", data=unlock_form(html, REPO, "network")).status_code == 303
        assert "/repos/acme/infra/collaborators/bob/permission" in {r.raw_path for r in fake.requests}
