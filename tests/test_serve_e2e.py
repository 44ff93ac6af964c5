"""`tfbot serve` as a real subprocess: intake answers, de-duplication, Redis outage, health, bad config."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from bot.adapters.redis_server import EmbeddedRedis, connect
from tests.support import webhook_payloads as wp
from tests.support.tfbot_process import TfbotProcess, TfbotServer, free_port, wait_for, write_config

pytestmark = pytest.mark.e2e
SECRET = "e2e-webhook-secret"


def base_settings(tmp_path: Path, private_key: str, **extra) -> dict:
    return {
        "github": {"api_url": "http://127.0.0.1:9/api/v3", "app_id": 1234, "private_key": private_key,
                   "webhook_secret": SECRET, "retries": 0},
        "server": {"host": "127.0.0.1", "port": free_port()},
        "data_dir": str(tmp_path / "data"),
        "workers": 1,
        "repos": [{"name": "acme/*"}],
        **extra,
    }


@pytest.fixture()
def server(tmp_path, app_private_key):
    settings = base_settings(tmp_path, app_private_key)
    srv = TfbotServer(write_config(tmp_path, settings), settings["server"]["port"]).start()
    yield srv
    code = srv.stop()
    assert code == 0, srv.logs()


def processed_deliveries(data_dir: Path) -> list[str]:
    conn = connect(EmbeddedRedis(data_dir).url)
    return [json.loads(x)["delivery"] for x in conn.lrange("tfbot:deliveries", 0, -1)]


def installation_event(action="new_permissions_accepted"):
    return wp.installation_event(action, 99, "acme")


def test_intake_answers_and_processes_each_delivery_once(server, tmp_path):
    assert not (tmp_path / "workflows").exists(), "the default workflow ships inside the package"
    health = server.wait_healthy()
    assert health["checks"]["redis"]["ok"] is True
    assert health["checks"]["workers"]["count"] >= 1
    assert health["checks"]["terraform"]["version"].startswith("1.")

    ping = server.post_event("ping", wp.ping_event(), SECRET)
    assert ping.status_code == 200

    bad_sig = server.post_event("installation", installation_event(), "not-the-secret")
    assert bad_sig.status_code == 401
    unsigned = server.post_event("installation", installation_event(), None)
    assert unsigned.status_code == 401

    malformed = server.post_event("installation", b'{"action": "created", ', SECRET)
    assert malformed.status_code == 400
    missing_fields = server.post_event("installation", {"action": "created"}, SECRET)
    assert missing_fields.status_code == 400
    no_event_header = requests.post(server.url + "/events", data=b"{}", headers={
        "X-Hub-Signature-256": wp.sign(b"{}", SECRET), "X-GitHub-Delivery": "abc"}, timeout=5)
    assert no_event_header.status_code == 400

    unhandled = server.post_event("star", {"action": "created"}, SECRET)
    assert unhandled.status_code == 202
    not_ours = wp.push_event(wp.repository("elsewhere/infra"), "main", "1" * 40, "2" * 40, 99, "octocat")
    ignored = server.post_event("push", not_ours, SECRET)
    assert ignored.status_code == 202 and "not configured" in ignored.json()["message"]

    delivery = str(uuid.uuid4())
    first = server.post_event("installation", installation_event(), SECRET, delivery=delivery)
    second = server.post_event("installation", installation_event(), SECRET, delivery=delivery)
    assert first.status_code == 202 and first.json()["message"] == "queued"
    assert second.status_code == 200 and "duplicate" in second.json()["message"]
    data_dir = tmp_path / "data"
    wait_for(lambda: delivery in processed_deliveries(data_dir), message="the worker to process the delivery")
    # Rejected deliveries never reached the queue; the accepted one was processed exactly once.
    other = str(uuid.uuid4())
    server.post_event("installation", installation_event(), SECRET, delivery=other)
    wait_for(lambda: other in processed_deliveries(data_dir), message="a later delivery")
    assert processed_deliveries(data_dir).count(delivery) == 1
    assert len(processed_deliveries(data_dir)) == 2


def test_body_over_the_limit_is_413(tmp_path, app_private_key):
    settings = base_settings(tmp_path, app_private_key)
    settings["server"]["max_body_bytes"] = 4096
    srv = TfbotServer(write_config(tmp_path, settings), settings["server"]["port"]).start()
    try:
        big = {"action": "created", "installation": {"id": 1}, "padding": "x" * 10_000}
        assert srv.post_event("installation", big, SECRET).status_code == 413
    finally:
        srv.stop()


def test_redis_outage_answers_503_and_loses_nothing(tmp_path, app_private_key):
    redis_server = EmbeddedRedis(tmp_path / "external")
    url = redis_server.start()
    settings = base_settings(tmp_path, app_private_key, redis_url=url)
    srv = TfbotServer(write_config(tmp_path, settings), settings["server"]["port"]).start()
    try:
        srv.wait_healthy()
        redis_server.stop()
        delivery = str(uuid.uuid4())
        r = srv.post_event("installation", installation_event(), SECRET, delivery=delivery)
        assert r.status_code == 503
        health = requests.get(srv.url + "/healthz", timeout=10)
        assert health.status_code == 503
        assert health.json()["checks"]["redis"]["ok"] is False
        # GitHub redelivers the failed delivery once Redis is back: it is then accepted, not taken for a duplicate.
        url_again = redis_server.start()
        assert url_again == url
        wait_for(lambda: srv.post_event("installation", installation_event(), SECRET, delivery=delivery).status_code == 202,
                 message="the redelivery to be accepted")
        # Workers that lost Redis reconnect by themselves (RQ backs off, our startup retries likewise).
        health = srv.wait_healthy(timeout=120)
        assert health["checks"]["workers"]["count"] >= 1
        conn = connect(url)
        wait_for(lambda: any(delivery in x.decode() for x in conn.lrange("tfbot:deliveries", 0, -1)), timeout=120,
                 message="the redelivered event to be processed")
    finally:
        srv.stop()
        redis_server.stop()


def test_broken_config_stops_startup_with_one_line_per_problem(tmp_path):
    path = write_config(tmp_path, {"github": {"app_id": "x", "webhook_secret": ""}, "server": {"port": "eighty"},
                                   "workers": 0})
    result = subprocess.run([sys.executable, "-m", "bot", "serve", "--config", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    lines = [line.strip() for line in result.stderr.splitlines() if line.startswith("  ")]
    assert any(line.startswith("github.app_id: must be a whole number") for line in lines), result.stderr
    assert any(line.startswith("github.private_key: missing") for line in lines)
    assert any(line.startswith("github.webhook_secret: missing") for line in lines)
    assert any(line.startswith("server.port: must be a whole number") for line in lines)
    assert "workers: must be at least 1, got 0" in lines


def test_missing_terraform_stops_startup_with_install_hint(tmp_path, app_private_key):
    settings = base_settings(tmp_path, app_private_key)
    settings["terraform"] = {"binary": str(tmp_path / "no-terraform-here")}
    result = subprocess.run([sys.executable, "-m", "bot", "serve", "--config", str(write_config(tmp_path, settings))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "install Terraform >= 1.4" in result.stderr


def test_check_config_and_help(tmp_path, app_private_key):
    settings = base_settings(tmp_path, app_private_key)
    path = write_config(tmp_path, settings)
    ok = subprocess.run([sys.executable, "-m", "bot", "check-config", "--config", str(path)], capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "config OK" in ok.stdout and "terraform: 1." in ok.stdout
    assert app_private_key.splitlines()[1] not in ok.stdout + ok.stderr
    assert "git:       2." in ok.stdout and f"listen:    127.0.0.1:{settings['server']['port']} (free)" in ok.stdout
    assert "runs:      sandboxed with bubblewrap (terraform.sandbox.mode: auto)" in ok.stdout
    (tmp_path / "none").mkdir()
    unsandboxed = write_config(tmp_path / "none", {**settings, "terraform": {"sandbox": {"mode": "none"}}})
    said = subprocess.run([sys.executable, "-m", "bot", "check-config", "--config", str(unsandboxed)],
                          capture_output=True, text=True, timeout=60).stdout
    assert "runs:      NOT sandboxed: terraform.sandbox.mode: none; a PR's code can read tfbot's secrets" in said
    for command in ("serve", "worker", "check-config"):
        helped = subprocess.run([sys.executable, "-m", "bot", command, "--help"], capture_output=True, text=True)
        assert helped.returncode == 0 and "--config" in helped.stdout
    version = subprocess.run([sys.executable, "-m", "bot", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("tfbot ")


def test_an_unknown_workflow_stops_check_config_and_serve(tmp_path, app_private_key):
    settings = base_settings(tmp_path, app_private_key)
    settings["repos"] = [{"name": "acme/*", "workflow": "terragrunt-typo",
                          "projects": [{"dir": "a"}, {"dir": "b", "workflow": "defualt"}]}]
    path = str(write_config(tmp_path, settings))
    for command in ("check-config", "serve"):
        result = subprocess.run([sys.executable, "-m", "bot", command, "--config", path], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 2, (command, result.stderr)
        lines = [line.strip() for line in result.stderr.splitlines() if line.startswith("  ")]
        assert lines == ["repos[0].projects[1].workflow: unknown workflow 'defualt' (did you mean 'default'?)",
                         "repos[0].workflow: unknown workflow 'terragrunt-typo' (the workflows are: default)"], \
            (command, result.stderr)


def test_check_config_checks_what_startup_needs(tmp_path, app_private_key):
    import socket

    settings = base_settings(tmp_path, app_private_key, redis_url=f"redis://:hunter2-pw@127.0.0.1:{free_port()}/0")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", settings["server"]["port"]))
        taken.listen()
        result = subprocess.run([sys.executable, "-m", "bot", "check-config", "--config",
                                 str(write_config(tmp_path, settings))], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = [line.strip() for line in result.stderr.splitlines() if line.startswith("  ")]
    port = settings["server"]["port"]
    assert lines[0] == (f"server.port {port} is in use (TFBOT_SERVER_PORT): stop what listens there or pick "
                        "another port"), result.stderr
    assert lines[1].startswith("redis_url (TFBOT_REDIS_URL) does not answer: ConnectionError")
    assert len(lines) == 2 and "hunter2-pw" not in result.stderr


def test_check_config_beside_its_own_running_serve_passes_and_says_who_holds_the_port(server, tmp_path,
                                                                                      app_private_key):
    """Checking an edited config before a restart: its own `tfbot serve` holds the port, which is no problem; the
    same port held by anything else still is."""
    path = tmp_path / "config.yaml"
    ok = subprocess.run([sys.executable, "-m", "bot", "check-config", "--config", str(path)], capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    serve_pid = json.loads((tmp_path / "data" / "redis" / "owner.json").read_text())["supervisor"]
    assert f"(in use by the tfbot serve of this data_dir, pid {serve_pid}; free once it stops)" in ok.stdout
    other = tmp_path / "other"
    other.mkdir()
    settings = yaml.safe_load(path.read_text())
    elsewhere = write_config(other, {**settings, "data_dir": str(other / "data")})  # another data_dir, same port
    refused = subprocess.run([sys.executable, "-m", "bot", "check-config", "--config", str(elsewhere)],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "is in use (TFBOT_SERVER_PORT)" in refused.stderr


def test_read_only_commands_need_only_redis(tmp_path, redis_url):
    """`tfbot locks` and `tfbot audit` run on a host that has no App key or webhook secret."""
    path = write_config(tmp_path, {"redis_url": redis_url, "github": {"private_key_path": "absent.pem"}})
    for command in ("locks", "audit"):
        result = subprocess.run([sys.executable, "-m", "bot", command, "--config", str(path)], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, (command, result.stderr)
    unlock = subprocess.run([sys.executable, "-m", "bot", "unlock", "acme/infra", "network", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert unlock.returncode == 2 and "github.app_id: missing" in unlock.stderr


def test_a_port_in_use_stops_startup_naming_the_port(tmp_path, app_private_key):
    import socket

    settings = base_settings(tmp_path, app_private_key)
    port = settings["server"]["port"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = subprocess.run([sys.executable, "-m", "bot", "serve", "--config",
                                 str(write_config(tmp_path, settings))], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"server.port {port} is in use (TFBOT_SERVER_PORT)" in result.stderr
    assert "serving on" not in result.stderr and not (tmp_path / "data" / "redis" / "owner.json").exists()


def test_a_job_naming_a_function_outside_tfbot_is_refused_and_never_runs(server, tmp_path):
    """Redis is an execution surface: whoever can write to it must not run code on the workers."""
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from bot.queue import events_queue

    server.wait_healthy()
    conn = connect(EmbeddedRedis(tmp_path / "data").url)
    queue = events_queue(conn)
    marker = tmp_path / "pwned"
    evil = queue.enqueue_call("os.system", args=(f"touch {marker}",))
    # An allowed function with a foreign callback is refused too: callbacks are imported and called as well.
    sneaky = queue.enqueue_call("bot.jobs.report_command", args=("nope",), on_failure=__import__("rq").Callback(
        "os.system"))
    for job in (evil, sneaky):
        wait_for(lambda job=job: Job.fetch(job.id, connection=conn, serializer=JSONSerializer).get_status() == "failed",
                 message=f"job {job.id} to be refused")
    logs = server.logs()
    assert f"refused job {evil.id} from queue tfbot-events: its function 'os.system' is not a tfbot job function" in logs
    assert f"refused job {sneaky.id} from queue tfbot-events: its failure callback 'os.system'" in logs
    assert not marker.exists()


def test_a_failed_delivery_is_one_traceback_and_an_idle_worker_is_quiet(server, tmp_path):
    """GitHub is unreachable here: handling the PR fails once, and the log says so once, with one traceback."""
    from rq.job import Job
    from rq.serializers import JSONSerializer

    server.wait_healthy()
    repo = wp.repository("acme/infra")
    event = wp.pull_request_event("opened", repo, wp.pull_request(repo, 4, "a" * 40, "grow", "b" * 40), 99, "alice")
    delivery = str(uuid.uuid4())
    assert server.post_event("pull_request", event, SECRET, delivery=delivery).status_code == 202
    conn = connect(EmbeddedRedis(tmp_path / "data").url)
    wait_for(lambda: Job.fetch(f"delivery-{delivery}", connection=conn, serializer=JSONSerializer).get_status()
             == "failed", message="the delivery to fail")
    wait_for(lambda: "could not report the failure" in server.logs(), message="the failure report to fail too")
    lines = server.logs().splitlines()
    records_with_traceback = [before for before, line in zip(lines, lines[1:])
                              if line.startswith("Traceback") and before[:4].isdigit()]
    assert len(records_with_traceback) == 1 and delivery in records_with_traceback[0], "\n".join(lines)
    assert f"job delivery-{delivery} (pull_request delivery {delivery}) failed: requests.exceptions.ConnectionError" \
        in "\n".join(lines)
    # RQ's own bookkeeping (registry clean-up at start and every few seconds, "Job OK") stays at DEBUG.
    logs = "\n".join(lines)
    assert "cleaning registries" not in logs and "Job OK" not in logs and "Listening on" not in logs


def test_serve_says_where_it_serves_once_those_urls_answer(tmp_path, app_private_key):
    """A user who tries the printed URLs at once is not refused: the line comes after the web server listens."""
    settings = base_settings(tmp_path, app_private_key)
    srv = TfbotServer(write_config(tmp_path, settings), settings["server"]["port"])
    TfbotProcess.start(srv)  # the process only: TfbotServer.start() would wait for /healthz itself
    try:
        wait_for(lambda: "tfbot serving on" in srv.logs(), timeout=60, message="the serving line")
        assert requests.get(srv.url + "/healthz", timeout=5).status_code in (200, 503)
        line = next(x for x in srv.logs().splitlines() if "tfbot serving on" in x)
        for page in ("events", "locks", "drift", "healthz", "metrics"):  # every URL it names answers
            assert f"{srv.url}/{page}" in line
            assert requests.get(f"{srv.url}/{page}", timeout=5).status_code in (200, 405, 503), page
    finally:
        assert srv.stop() == 0, srv.logs()


def test_healthz_says_github_cannot_be_reached_and_stays_healthy(server):
    """GitHub away (here: a closed port) is shown, never a failed check: deliveries still queue in Redis."""
    def github() -> dict | None:
        body = requests.get(server.url + "/healthz", timeout=10).json()
        return body["github"] if body.get("github", {}).get("ok") is False else None

    seen = wait_for(github, timeout=60, message="/healthz to show the recovery pass's failed call to GitHub")
    assert "127.0.0.1" in seen["error"] and seen["checked_seconds_ago"] >= 0
    health = server.wait_healthy()  # 200 once the workers listen (on a busy machine they may still be starting)
    assert health["ok"] is True and health["github"]["ok"] is False
