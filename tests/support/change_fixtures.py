"""Change records under test: CloudTrail event messages from the fixtures in tests/cloudtrail_events/, real SQS
queues in moto's server, and the services of a worker configured with `change_records`."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from bot.compose import worker_services as build_worker_services
from bot.config import parse_config
from bot.services import WorkerServices

EVENTS = Path(__file__).resolve().parents[1] / "cloudtrail_events"
USER, ROLE, SERVICE = "iam_user_put_bucket_policy", "assumed_role_modify_db_instance", "aws_service_terminate_instances"
ISSUES_REPO = "acme/infra-changes"
INSTALLATION = 99


def cloudtrail(name: str, **detail: Any) -> str:
    """The message body of fixture `name`, with `detail` fields of the CloudTrail record replaced."""
    event = json.loads((EVENTS / f"{name}.json").read_text())
    event["detail"].update(detail)
    return json.dumps(event)


@dataclass
class Queues:
    """A change-record queue whose redrive policy moves a message to `dead_letters` after `max_receive` receives."""

    client: Any
    url: str
    dead_letters: str
    endpoint: str

    def send(self, body: str) -> None:
        self.client.send_message(QueueUrl=self.url, MessageBody=body)

    def waiting(self, url: str | None = None) -> int:
        """Messages in the queue, visible or received and not deleted yet."""
        attributes = self.client.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def dead(self) -> list[dict[str, Any]]:
        """The messages in the dead-letter queue (received once, left there)."""
        answer = self.client.receive_message(QueueUrl=self.dead_letters, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                             VisibilityTimeout=0, MessageAttributeNames=["All"])
        return list(answer.get("Messages", []))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and a region for boto3 against moto (and for a `tfbot serve` started by the test)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")


@pytest.fixture
def make_queues(moto_server_url: str, aws_env: None) -> Callable[..., Queues]:
    """Queues of their own for each call (moto's server is shared by the session): `redrive` sets SQS's own
    maxReceiveCount (None: no redrive policy), `visibility` the queue's default visibility timeout."""
    import boto3

    client = boto3.client("sqs", region_name="eu-west-1", endpoint_url=moto_server_url)

    def make(redrive: int | None = 50, visibility: int = 30) -> Queues:
        name = f"changes-{uuid.uuid4().hex[:12]}"
        dead = client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        arn = client.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes = {"VisibilityTimeout": str(visibility)}
        if redrive is not None:
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": redrive})
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        return Queues(client, url, dead, moto_server_url)

    return make


def change_records_settings(queues: Queues, **values: Any) -> dict[str, Any]:
    """The `change_records` section for `queues` (issues in acme/infra-changes)."""
    return {"sqs_queue_url": queues.url, "endpoint_url": queues.endpoint, "region": "eu-west-1",
            "repo": ISSUES_REPO, "wait_seconds": 1, "visibility_timeout": 10, **values}


@pytest.fixture
def make_change_services(fake_github, app_keys, redis_conn, tmp_path,
                         make_queues) -> Callable[..., tuple[WorkerServices, Queues]]:
    """A worker's services with change records on a fresh queue, and the queue; issues go to acme/infra-changes
    (installation 99); `change_records` values and `repos` entries may be given."""
    fake_github.add_repo(ISSUES_REPO, "file:///nonexistent/acme/infra-changes.git", installation_id=INSTALLATION)

    def make(repos: list[dict[str, Any]] | None = None, queues: Queues | None = None,
             **values: Any) -> tuple[WorkerServices, Queues]:
        queues = queues or make_queues()
        config = parse_config({
            "github": {"api_url": fake_github.base_url, "app_id": fake_github.app_id,
                       "private_key": app_keys[0].decode(), "webhook_secret": "s", "retries": 0, "write_interval": 0},
            "data_dir": str(tmp_path / "data"),
            "repos": repos if repos is not None else [{"name": "acme/*"}],
            "change_records": change_records_settings(queues, **values),
        }, base_dir=tmp_path)
        return build_worker_services(config, redis_conn), queues

    return make
