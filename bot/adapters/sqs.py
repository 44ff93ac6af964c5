"""The SQS adapter of change records: long-polls the queue an EventBridge rule feeds, deletes what was recorded,
and sets aside what cannot be (boto3; tfbot's own AWS credentials from boto3's usual chain).

A received message stays invisible to every receiver for the visibility timeout, then SQS delivers it again
with `ApproximateReceiveCount` one higher: a message is deleted only once its issue was written. The queue's
redrive policy (a dead-letter queue and `maxReceiveCount`) is SQS's own net for messages that keep failing;
tfbot also moves to the dead-letter queue at once what it cannot read at all, and what it failed to record
`max_receive_count` times (a queue without a redrive policy).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from bot.config.models import ChangeRecordsConfig


T = TypeVar("T")


class QueueError(Exception):
    """An SQS call failed; the message names the call, the queue and SQS's error code, never a credential."""


@dataclass(frozen=True)
class Message:
    """One received message: its id, the handle that deletes it, its body, and how often SQS delivered it."""

    id: str
    receipt: str
    body: str
    receive_count: int


class ChangeQueue:
    """The change-record queue and its dead-letter queue."""

    def __init__(self, client: SQSClient, url: str, dead_letter_url: str = ""):
        self.client = client
        self.url = url
        self.dead_letter_url = dead_letter_url

    @classmethod
    def from_config(cls, config: ChangeRecordsConfig) -> "ChangeQueue":
        import boto3

        client = boto3.client("sqs", region_name=config.region or None, endpoint_url=config.endpoint_url or None)
        return cls(client, config.sqs_queue_url, config.dead_letter_queue_url)

    def resolve_dead_letter_queue(self) -> str:
        """The dead-letter queue's URL: the configured one, else the one the queue's redrive policy names; "" when
        there is neither. Raises QueueError when SQS cannot be asked."""
        if self.dead_letter_url:
            return self.dead_letter_url
        attributes = self._call("GetQueueAttributes", lambda: self.client.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["RedrivePolicy"]))
        policy = attributes.get("Attributes", {}).get("RedrivePolicy")
        if not policy:
            return ""
        try:
            target = str(json.loads(policy)["deadLetterTargetArn"])
            _, _, _, _, account, name = target.split(":", 5)  # arn:aws:sqs:REGION:ACCOUNT:NAME
        except (ValueError, KeyError, TypeError):
            raise QueueError(f"the redrive policy of {self.url} names no dead-letter queue ARN: {policy[:200]}") \
                from None
        found = self._call("GetQueueUrl", lambda: self.client.get_queue_url(
            QueueName=name, QueueOwnerAWSAccountId=account))
        self.dead_letter_url = str(found["QueueUrl"])
        return self.dead_letter_url

    def receive(self, wait_seconds: int, visibility_timeout: int, max_messages: int = 10) -> list[Message]:
        """Up to `max_messages` messages, waiting up to `wait_seconds` for the first (long polling)."""
        answer = self._call("ReceiveMessage", lambda: self.client.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=visibility_timeout, MessageSystemAttributeNames=["ApproximateReceiveCount"]))
        return [Message(id=str(m.get("MessageId", "")), receipt=str(m.get("ReceiptHandle", "")),
                        body=str(m.get("Body", "")),
                        receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")))
                for m in answer.get("Messages", [])]

    def delete(self, message: Message) -> None:
        """Delete a message that was handled (recorded, or not to be recorded)."""
        self._call("DeleteMessage", lambda: self.client.delete_message(QueueUrl=self.url,
                                                                       ReceiptHandle=message.receipt))

    def release(self, message: Message) -> None:
        """Make a received message visible again at once (tfbot is stopping before it handled it)."""
        self._call("ChangeMessageVisibility", lambda: self.client.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=message.receipt, VisibilityTimeout=0))

    def set_aside(self, message: Message, reason: str) -> None:
        """Send the message to the dead-letter queue with why (attribute `tfbot-reason`), then delete it here."""
        if not self.dead_letter_url:
            raise QueueError("no dead-letter queue: set change_records.dead_letter_queue_url, or a redrive policy "
                             "on the queue")
        attributes: dict[str, Any] = {"tfbot-reason": {"DataType": "String", "StringValue": reason[:1000] or "-"}}
        self._call("SendMessage", lambda: self.client.send_message(
            QueueUrl=self.dead_letter_url, MessageBody=message.body or "(empty)", MessageAttributes=attributes))
        self.delete(message)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise QueueError(f"SQS {what} on {self.url}: {error.get('Code', 'error')}: "
                             f"{error.get('Message', '')}".rstrip(": ")) from None
        except BotoCoreError as exc:
            raise QueueError(f"SQS {what} on {self.url}: unreachable or tfbot has no AWS credentials "
                             f"({type(exc).__name__}: {exc})") from None
