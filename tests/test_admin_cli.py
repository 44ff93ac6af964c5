"""`tfbot locks`, `tfbot unlock` and `tfbot hash-password`, run as the command line runs them, on a real Redis."""
from __future__ import annotations

import io
import json

import pytest
from werkzeug.security import check_password_hash

from bot.state import audit
from bot.cli import main
from bot.config import load_config
from bot.state.locks import LockStore
from bot.models import LockState, Project
from bot.adapters.redis_server import EmbeddedRedis
from tests.support.browser import make_web_app, seed_lock
from tests.support.tfbot_process import write_config

NETWORK = Project(repo="acme/infra", name="net", dir="network")  # the configured name


@pytest.fixture
def config_path(tmp_path, redis_url, redis_conn, fake_github, app_keys):
    fake_github.add_repo("acme/infra", "file:///nowhere", installation_id=99)
    for number in (3, 5):
        fake_github.add_pull("acme/infra", number, head_ref=f"b{number}", user="alice", head_sha="a" * 40,
                             base_sha="b" * 40)
    return write_config(tmp_path, {
        "github": {"api_url": fake_github.base_url, "app_id": fake_github.app_id,
                   "private_key": app_keys[0].decode(), "webhook_secret": "cli-tests",
                   "app_slug": fake_github.app_slug, "retries": 0, "write_interval": 0},
        "redis_url": redis_url,
        "data_dir": str(tmp_path / "data"),
        "repos": [{"name": "acme/*", "projects": [{"dir": "network", "name": "net"}]}],
    })


def tfbot(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_locks_lists_oldest_first_and_filters_by_repo(capsys, config_path, redis_conn):
    assert tfbot(capsys, "locks", "-c", str(config_path)) == (0, "No locks are held.\n", "")
    seed_lock(redis_conn, dir="dns", pull=7, user="bob", age=120, summary="")
    seed_lock(redis_conn, dir="network", pull=3, age=2 * 86400, state=LockState.APPLY_FAILED)
    seed_lock(redis_conn, repo="acme/apps", dir="db", pull=12, age=30, title="\x1b[2J<b>clear the screen")
    code, out, _ = tfbot(capsys, "locks", "-c", str(config_path))
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["REPO", "PROJECT", "DIR", "WORKSPACE", "PR", "USER", "HELD", "FOR",
                                              "STATE", "SUMMARY"]
    assert [line.split()[2] for line in lines[1:]] == ["network", "dns", "db"]
    assert "#3" in lines[1] and "2 days" in lines[1] and "apply failed" in lines[1] and "Plan: 1 to add" in lines[1]
    assert "\x1b" not in out
    code, out, _ = tfbot(capsys, "locks", "--repo", "acme/apps", "-c", str(config_path))
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["acme/apps"]


def test_locks_say_what_a_plan_was_made_with(capsys, config_path, redis_conn):
    seed_lock(redis_conn, dir="network", pull=3, age=60, extra_args="-target=terraform_data.a")
    seed_lock(redis_conn, dir="dns", pull=4, age=30, extra_args="-destroy",
              summary="Plan: 0 to add, 0 to change, 2 to destroy.")
    seed_lock(redis_conn, dir="db", pull=5, age=10)
    lines = tfbot(capsys, "locks", "-c", str(config_path))[1].splitlines()
    assert lines[1].endswith("Plan: 1 to add, 0 to change, 0 to destroy. (with -target=terraform_data.a)")
    assert lines[2].endswith("DESTROY plan: Plan: 0 to add, 0 to change, 2 to destroy. (with -destroy)")
    assert lines[3].endswith("Plan: 1 to add, 0 to change, 0 to destroy.")


def test_locks_json_is_the_api_json(capsys, config_path, redis_conn, tmp_path, app_private_key):
    seed_lock(redis_conn, dir="network", pull=3, age=3600, run_id="r-1", extra_args="-destroy")
    seed_lock(redis_conn, repo="acme/apps", dir="db", pull=12, age=30)
    redis_conn.rpush("tfbot:lockq:acme/infra:default:network", '{"pull": 9}')
    code, out, _ = tfbot(capsys, "locks", "--json", "-c", str(config_path))
    app, _ = make_web_app(redis_conn, tmp_path / "web", app_private_key)
    api = app.test_client().get("/api/locks").get_json()
    cli = json.loads(out)

    def steady(items):
        return [{k: v for k, v in item.items() if k != "age_seconds"} for item in items]

    assert code == 0 and steady(cli["locks"]) == steady(api["locks"]) and cli["locks"][0]["waiting"] == 1
    assert (cli["total"], cli["next"]) == (api["total"], api["next"]) == (2, None)
    assert [d["dir"] for d in json.loads(tfbot(capsys, "locks", "--json", "--repo", "acme/apps", "-c",
                                               str(config_path))[1])["locks"]] == ["db"]


def test_unlock_releases_hands_over_and_comments_on_the_pr(capsys, config_path, redis_conn, fake_github):
    store = LockStore(redis_conn)
    store.try_acquire(NETWORK, 3, "alice", waiter={"installation": 99})
    store.try_acquire(NETWORK, 5, "bob", waiter={"installation": 99})
    redis_conn.hset("tfbot:pr:acme/infra:3", "installation", "99")
    code, out, err = tfbot(capsys, "unlock", "acme/infra", "./network/", "-c", str(config_path), "--as", "octo-admin")
    assert (code, err) == (0, "")
    assert "Unlocked net (acme/infra, dir network, workspace default), held by #3 (alice)." in out
    assert "The lock goes to #5" in out and "Commented on acme/infra#3." in out
    assert store.get(NETWORK).pull == 5
    [comment] = fake_github.comments("acme/infra", 3)
    assert "@octo-admin unlocked `net` with the tfbot command line." in comment["body"]
    assert "The lock goes to #5, which tfbot plans now." in comment["body"]
    [entry] = audit.entries(redis_conn)
    assert (entry.action, entry.pull, entry.user) == ("unlock", 3, "octo-admin")
    from rq import Queue
    from rq.serializers import JSONSerializer

    [job] = Queue("tfbot-events", connection=redis_conn, serializer=JSONSerializer).get_jobs()
    assert job.func_name == "bot.jobs.plan_waiter" and job.args[0]["name"] == "net" and job.args[1] == 5


def test_unlock_without_as_names_the_os_user_without_mentioning(capsys, config_path, redis_conn, fake_github,
                                                               monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "root")
    LockStore(redis_conn).try_acquire(NETWORK, 3, "alice")
    redis_conn.hset("tfbot:pr:acme/infra:3", "installation", "99")
    assert tfbot(capsys, "unlock", "acme/infra", "network", "default", "-c", str(config_path))[0] == 0
    body = fake_github.comments("acme/infra", 3)[0]["body"]
    assert "`root` unlocked `net`" in body and "@root" not in body


def test_unlock_of_a_free_workspace_or_without_installation(capsys, config_path, redis_conn):
    code, _, err = tfbot(capsys, "unlock", "acme/infra", "network", "-c", str(config_path))
    assert code == 2 and "is not locked" in err
    LockStore(redis_conn).try_acquire(NETWORK, 3, "alice")
    code, out, _ = tfbot(capsys, "unlock", "acme/infra", "network", "-c", str(config_path))
    assert code == 1 and "installation is not recorded" in out
    assert LockStore(redis_conn).get(NETWORK) is None  # the unlock itself stands


def test_the_embedded_redis_of_serve_is_found_like_a_worker_finds_it(capsys, tmp_path, app_keys):
    data = tmp_path / "d"
    path = write_config(tmp_path, {"github": {"app_id": 1, "private_key": app_keys[0].decode(),
                                              "webhook_secret": "x"}, "data_dir": str(data)})
    code, _, err = tfbot(capsys, "locks", "-c", str(path))
    assert code == 2 and "no embedded Redis runs under" in err
    said = err.split(": ", 1)[1]
    assert f"under {data}: is `tfbot serve` running on this host with this config?" in said
    code, _, err = tfbot(capsys, "audit", "-c", str(path))  # every command says the same, with the path
    assert code == 2 and err.split(": ", 1)[1] == said
    server = EmbeddedRedis(data)
    url = server.start()
    try:
        from bot.adapters.redis_server import connect

        seed_lock(connect(url), dir="network", pull=3)
        code, out, _ = tfbot(capsys, "locks", "-c", str(path))
        assert code == 0 and "#3" in out
    finally:
        server.stop()


def test_hash_password_makes_a_hash_the_config_accepts(capsys, monkeypatch, tmp_path, app_keys):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    code, out, _ = tfbot(capsys, "hash-password")
    digest = out.strip()
    assert code == 0 and check_password_hash(digest, "a long enough password")
    path = write_config(tmp_path, {"github": {"app_id": 1, "private_key": app_keys[0].decode(),
                                              "webhook_secret": "x"},
                                   "server": {"admins": [{"name": "ana", "password_hash": digest}]}})
    assert load_config(path).server.admins[0].name == "ana"
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert tfbot(capsys, "hash-password")[0] == 2
