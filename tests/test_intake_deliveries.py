"""A delivery taken once in one round trip (bot/state/deliveries.py) and its body written into the job as received
(bot.intake.webhooks.RawJSON, bot.queue.SplicingJSONSerializer): real Redis, real RQ, the real Flask app."""
from __future__ import annotations

import json
import zlib

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from bot.adapters.preflight import TerraformCheck
from bot.compose import web_services
from bot.config import parse_config
from bot.intake.webhooks import RawJSON
from bot.jobs import RQJobs
from bot.queue import SplicingJSONSerializer, events_queue
from bot.state import keys
from bot.state.deliveries import DELIVERY_TTL_SECONDS, Deliveries
from bot.web.app import create_app
from tests.support import webhook_payloads as wp

SECRET = "intake-secret"


def payload() -> dict:
    repo = wp.repository("acme/infra", clone_url="file:///nowhere")
    return wp.pull_request_event("opened", repo, wp.pull_request(repo, 7, "a" * 40, "feature", "b" * 40), 99, "alice")


class CountingRedis:
    """Counts the commands and round trips a client sends, by wrapping its connection pool's connections."""

    def __init__(self, conn):
        self.trips = 0
        pool = conn.connection_pool
        original = pool.get_connection
        counter = self

        def get_connection(*args, **kwargs):
            connection = original(*args, **kwargs)
            if not getattr(connection, "_counted", False):
                send = connection.send_packed_command

                def counted(command, check_health=True):
                    counter.trips += 1
                    return send(command, check_health)

                connection.send_packed_command = counted
                connection._counted = True
            return connection

        pool.get_connection = get_connection


def test_a_new_delivery_is_queued_in_one_round_trip_and_a_duplicate_writes_nothing(redis_conn):
    deliveries, jobs = Deliveries(redis_conn), RQJobs(redis_conn, 600)
    body = json.dumps(payload()).encode()
    jobs.events.get_redis_server_version()  # RQ asks once per queue object, then remembers
    deliveries.take_once("warm", lambda pipe: None)  # the script is loaded once per server (EVALSHA after)
    counting = CountingRedis(redis_conn)

    def stage(pipe):
        jobs.handle_delivery("guid-1", "pull_request", RawJSON(body), pipeline=pipe)

    assert deliveries.take_once("guid-1", stage) is True
    assert counting.trips == 1
    assert 0 < redis_conn.ttl(keys.delivery("guid-1")) <= DELIVERY_TTL_SECONDS
    job = Job.fetch("delivery-guid-1", connection=redis_conn, serializer=JSONSerializer)
    assert job.func_name == "bot.jobs.handle_delivery" and job.args == ["guid-1", "pull_request", json.loads(body)]
    assert job.retries_left == 8
    assert redis_conn.hget(job.key, "failure_callback_name") == b"bot.jobs.event_job_failed"
    created = redis_conn.hget(job.key, "enqueued_at")

    counting.trips = 0
    assert deliveries.take_once("guid-1", stage) is False
    assert counting.trips == 1
    assert redis_conn.lrange("rq:queue:tfbot-events", 0, -1) == [b"delivery-guid-1"]
    assert redis_conn.hget(job.key, "enqueued_at") == created  # the queued job was not written again


def test_a_failing_write_leaves_no_delivery_key_so_a_redelivery_is_handled(redis_conn):
    deliveries, jobs = Deliveries(redis_conn), RQJobs(redis_conn, 600)
    redis_conn.set("rq:queue:tfbot-events", "not a list")  # RPUSH onto it fails inside the script

    def stage(pipe):
        jobs.handle_delivery("guid-2", "pull_request", payload(), pipeline=pipe)

    with pytest.raises(Exception, match="WRONGTYPE"):
        deliveries.take_once("guid-2", stage)
    assert not redis_conn.exists(keys.delivery("guid-2"))
    redis_conn.delete("rq:queue:tfbot-events")
    assert deliveries.take_once("guid-2", stage) is True


def test_only_the_writes_of_a_queued_job_may_be_staged(redis_conn):
    deliveries = Deliveries(redis_conn)
    with pytest.raises(ValueError, match="FLUSHDB"):
        deliveries.take_once("guid-3", lambda pipe: pipe.flushdb())
    assert not redis_conn.exists(keys.delivery("guid-3"))


def test_the_body_is_spliced_into_the_job_as_received():
    body = b'{"action": "opened",  "text": "caf\xc3\xa9 \\u00e9 \\"quoted\\"", "n": 1.50}'
    data = SplicingJSONSerializer.dumps(["bot.jobs.handle_delivery", None, ["id", "push", RawJSON(body)], {}])
    assert body in data  # the bytes as they came, spacing and escapes kept: not encoded again
    assert JSONSerializer.loads(data) == ["bot.jobs.handle_delivery", None, ["id", "push", json.loads(body)], {}]
    two = SplicingJSONSerializer.dumps([RawJSON(b"[1]"), "x", RawJSON(b'{"b": 2}')])
    assert json.loads(two) == [[1], "x", {"b": 2}]
    assert SplicingJSONSerializer.dumps({"a": [1, "two"]}) == json.dumps({"a": [1, "two"]}).encode()
    with pytest.raises(TypeError):
        SplicingJSONSerializer.dumps({"a": object()})


def test_only_utf8_text_without_a_byte_order_mark_is_spliced():
    parsed = {"a": 1}
    assert isinstance(RawJSON.of(b'{"a": 1}', parsed), RawJSON)
    assert RawJSON.of(b'\xef\xbb\xbf{"a": 1}', parsed) is parsed  # json.loads reads the BOM; a splice would not
    assert RawJSON.of('{"a": 1}'.encode("utf-16"), parsed) is parsed
    # What it does fall back to still makes a job a worker reads.
    assert json.loads(SplicingJSONSerializer.dumps([RawJSON.of(b'\xef\xbb\xbf{"a": 1}', parsed)])) == [parsed]


def test_the_endpoint_queues_the_body_as_received_once(redis_conn, app_private_key, tmp_path):
    config = parse_config({"github": {"app_id": 1, "private_key": app_private_key, "webhook_secret": SECRET},
                           "data_dir": str(tmp_path), "repos": [{"name": "acme/*"}]}, base_dir=tmp_path)
    client = create_app(web_services(config, redis_conn, TerraformCheck(True, "1.11.4"))).test_client()
    body = json.dumps(payload(), indent=1).encode()  # indented: a re-encoded payload would differ
    headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "guid-4",
               "X-Hub-Signature-256": wp.sign(body, SECRET)}
    assert client.post("/events", data=body, headers=headers).status_code == 202
    again = client.post("/events", data=body, headers=headers)
    assert again.status_code == 200 and again.get_json()["message"].startswith("duplicate")
    assert events_queue(redis_conn).count == 1
    assert body in zlib.decompress(redis_conn.hget("rq:job:delivery-guid-4", "data"))
