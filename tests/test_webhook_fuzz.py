"""Property-based fuzzing of POST /events (the real Flask app, real Redis): malformed, truncated, mistyped,
unknown and oversized bodies, signed and not. Never a 5xx, never a job or a state change from a bad body."""
from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.web.app import create_app
from bot.config import parse_config
from bot.adapters.preflight import TerraformCheck
from bot.compose import web_services
from tests.support import webhook_payloads as wp

SECRET = "fuzz-secret"
REPO_ROOT = Path(__file__).resolve().parent.parent
EVENTS = ["pull_request", "issue_comment", "pull_request_review", "push", "installation", "check_run", "ping", "star",
          "", "x" * 70]


@pytest.fixture
def client(redis_conn, app_private_key, tmp_path):
    config = parse_config({
        "github": {"app_id": 1, "private_key": app_private_key, "webhook_secret": SECRET},
        "data_dir": str(tmp_path),
        "repos": [{"name": "acme/*"}], "server": {"max_body_bytes": 64 * 1024},
    }, base_dir=tmp_path)
    app = create_app(web_services(config, redis_conn, TerraformCheck(True, "1.11.4")))
    return app.test_client()


def real_payloads() -> list[tuple[str, dict]]:
    repo = wp.repository("acme/infra", clone_url="file:///nowhere")
    pull = wp.pull_request(repo, 7, "a" * 40, "feature", "b" * 40)
    comment = {"id": 11, "body": "plan", "user": wp.user("alice")}
    return [
        ("pull_request", wp.pull_request_event("opened", repo, pull, 99, "alice")),
        ("issue_comment", wp.issue_comment_event("created", repo, 7, comment, 99, "alice")),
        ("installation", wp.installation_event("created", 99, "acme")),
        ("check_run", wp.check_run_event("requested_action", repo, wp.check_run(repo, 5, "tfbot/plan: x", "a" * 40),
                                         99, "bob", identifier="apply")),
    ]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@st.composite
def mutated(draw):
    """A real payload with one field removed, retyped or replaced: the shapes a validator must catch."""
    event, payload = draw(st.sampled_from(real_payloads()))
    payload = json.loads(json.dumps(payload))
    node = payload
    path = []
    while isinstance(node, dict) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node)))
        path.append(key)
        if not isinstance(node[key], dict):
            break
        node = node[key]
    if path:
        parent = payload
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON)
    body = json.dumps(payload).encode()
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]  # truncated
    return event, body


BODIES = st.one_of(
    mutated(),
    st.tuples(st.sampled_from(EVENTS), st.binary(max_size=300)),
    st.tuples(st.sampled_from(EVENTS), JSON.map(lambda v: json.dumps(v).encode())),
    st.tuples(st.sampled_from(EVENTS), st.just(b"{" * 70_000)),  # over the body limit
)


def snapshot(redis_conn) -> dict[bytes, bytes]:
    return {k: redis_conn.dump(k) for k in redis_conn.scan_iter("*")}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=BODIES, signed=st.booleans(), delivery=st.sampled_from(["d-1", "", "../x", "a" * 100]))
def test_events_endpoint_never_fails_and_never_acts_on_bad_input(client, redis_conn, caplog, case, signed, delivery):
    event, body = case
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    if signed:
        headers["X-Hub-Signature-256"] = wp.sign(body, SECRET)
    before = snapshot(redis_conn)
    with caplog.at_level(logging.WARNING):
        response = client.post("/events", data=body, headers=headers)
    assert response.status_code < 500, response.get_data(as_text=True)
    assert response.is_json and "message" in response.get_json()
    assert not any(r.exc_info for r in caplog.records), "an exception reached the log"
    if not signed:  # refused unread when too large, else for its signature
        assert response.status_code in (401, 413)
    if response.status_code >= 300 or not signed:
        assert snapshot(redis_conn) == before, "a rejected delivery changed Redis"
    redis_conn.flushdb()


def test_a_valid_delivery_is_queued_once(client, redis_conn):
    event, payload = real_payloads()[0]
    body = json.dumps(payload).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": "abc", "X-Hub-Signature-256": wp.sign(body, SECRET)}
    assert client.post("/events", data=body, headers=headers).status_code == 202
    assert client.post("/events", data=body, headers=headers).status_code == 200
    assert redis_conn.llen("rq:queue:tfbot-events") == 1


def test_a_repository_name_that_would_escape_a_path_is_refused(client, redis_conn):
    event, payload = real_payloads()[0]
    payload["repository"]["full_name"] = "acme/../../etc"
    body = json.dumps(payload).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": "abc", "X-Hub-Signature-256": wp.sign(body, SECRET)}
    response = client.post("/events", data=body, headers=headers)
    assert response.status_code == 400 and "full_name" in response.get_json()["message"]


def test_of_check_run_events_only_a_button_press_is_queued(client, redis_conn):
    def post(payload):
        body = json.dumps(payload).encode()
        return client.post("/events", data=body, headers={"X-GitHub-Event": "check_run", "X-GitHub-Delivery": str(
            uuid.uuid4()), "X-Hub-Signature-256": wp.sign(body, SECRET)})

    repo = wp.repository("acme/infra", clone_url="file:///nowhere")
    run = wp.check_run(repo, 5, "tfbot/plan: network", "a" * 40)
    for action in ("created", "completed", "rerequested"):
        response = post(wp.check_run_event(action, repo, run, 99, "bob"))
        assert (response.status_code, response.get_json()["message"]) == (
            202, f"action '{action}' of 'check_run' is not handled; ignored")
    assert redis_conn.llen("rq:queue:tfbot-events") == 0
    press = wp.check_run_event("requested_action", repo, run, 99, "bob", identifier="apply")
    assert post(press).status_code == 202
    assert redis_conn.llen("rq:queue:tfbot-events") == 1
    del press["requested_action"]
    response = post(press)
    assert response.status_code == 400 and "requested_action.identifier is missing" in response.get_json()["message"]
