"""The change-record poller of `tfbot serve`: a background thread that long-polls the SQS queue and hands each
message to bot/changes/recorder.py.

Every `tfbot serve` host with `change_records` runs one; several are safe together: SQS gives each message to
one receiver, a group's issue is written under its lock in Redis, and the projects' states are read (a job,
`index_states`) by the one host that claims each `state_refresh` period.

What becomes of a message:
- recorded, added to its group, ignored, or recorded already: deleted;
- not a CloudTrail API call at all: moved to the dead-letter queue at once, and counted (`malformed`);
- not recorded (GitHub or Redis failed, or another host was writing its group's issue): left in the queue,
  which delivers it again after `visibility_timeout`; once tfbot failed `max_receive_count` times, moved to the
  dead-letter queue (`gave_up`). A redrive policy on the queue does the same on SQS's side.
A stop ends the thread within one long poll (`wait_seconds`): messages received but not handled yet are made
visible again at once.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

import redis

from bot.adapters.github import GitHubError
from bot.adapters.redis_server import connect
from bot.adapters.sqs import ChangeQueue, Message, QueueError
from bot.changes.recorder import ChangeRecorder, Handled, Outcome
from bot.compose import worker_services
from bot.config import Config
from bot.services import WorkerServices
from bot.state.change_records import ChangeStore

log = logging.getLogger("tfbot.changes")

RETRY_SECONDS = 10.0  # after SQS or Redis failed
NOT_READY_SECONDS = 300.0  # between two checks of a repository the App is not installed on, or a missing DLQ


class ChangePoller:
    """Polls one queue for one `tfbot serve`."""

    def __init__(self, config: Config, conn: redis.Redis, queue: ChangeQueue | None = None,
                 services: Callable[[], WorkerServices] | None = None):
        if config.change_records is None:
            raise ValueError("change_records is not configured")
        self.settings = config.change_records
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.queue = queue or ChangeQueue.from_config(self.settings)
        self.store = ChangeStore(conn)
        self.svc = services() if services else worker_services(config, conn)
        self.recorder = ChangeRecorder(self.svc, self.owner)

    def ready(self) -> str | None:
        """Why the poller cannot start yet (no dead-letter queue, the App not installed on the issues' repository),
        or None. GitHub unreachable is not a reason: the repository is checked again at first use."""
        try:
            dead_letters = self.queue.resolve_dead_letter_queue()
        except QueueError as exc:
            return str(exc)
        if not dead_letters:
            return (f"the queue {self.settings.sqs_queue_url} has no redrive policy and "
                    "change_records.dead_letter_queue_url is empty: tfbot needs a dead-letter queue to set aside "
                    "messages it cannot record")
        try:
            self.recorder.issues()  # asks GitHub for the App's installation on the repository
        except GitHubError as exc:
            if "answered 404" in str(exc):  # GitHub's answer for a repository the App cannot see
                return (f"change_records.repo {self.settings.repo}: the GitHub App is not installed on it, or it "
                        f"does not exist ({exc}); install the App there")
            log.warning("change records: GitHub could not say whether the App is installed on %s (%s); checked "
                        "again when the first change is recorded", self.settings.repo, exc)
        log.info("change records: polling SQS queue %s (dead-letter queue %s); issues go to %s",
                 self.settings.sqs_queue_url, dead_letters, self.settings.repo)
        return None

    def poll_once(self, stop: threading.Event) -> int:
        """One long poll and what it brought; returns how many messages were handled. Raises QueueError and
        Redis errors."""
        self.store.beat(self.owner, self.settings.sqs_queue_url)
        if self.store.claim_index_period(self.owner, self.settings.state_refresh):
            self.svc.jobs.index_states()
        messages = self.queue.receive(self.settings.wait_seconds, self.settings.visibility_timeout)
        handled = 0
        for i, message in enumerate(messages):
            if stop.is_set():
                for left in messages[i:]:
                    self._release(left)
                break
            self.handle(message)
            handled += 1
        return handled

    def handle(self, message: Message) -> Handled:
        """Record one message and delete it, set it aside, or leave it to be delivered again."""
        try:
            result = self.recorder.handle(message.body)
        except Exception as exc:  # noqa: BLE001 - a fault in tfbot on one message must not stop the poller
            log.exception("change records: message %s could not be handled", message.id)
            result = Handled(Outcome.FAILED, f"a fault in tfbot: {type(exc).__name__}")
        self.store.count("received")
        self.store.count(result.outcome.value)
        try:
            if result.outcome.done:
                self.queue.delete(message)
                level = logging.INFO if result.outcome in (Outcome.RECORDED, Outcome.ADDED) else logging.DEBUG
                log.log(level, "change records: %s: %s", result.outcome.value, result.detail)
            elif result.outcome is Outcome.MALFORMED:
                self.queue.set_aside(message, f"malformed: {result.detail}")
                self.store.count("set_aside")
                log.warning("change records: message %s set aside in the dead-letter queue: %s", message.id,
                            result.detail)
            elif message.receive_count >= self.settings.max_receive_count:
                self.queue.set_aside(message, f"not recorded after {message.receive_count} tries: {result.detail}")
                self.store.count("gave_up")
                log.error("change records: message %s set aside after %d tries: %s", message.id,
                          message.receive_count, result.detail)
            else:
                level = logging.INFO if result.outcome is Outcome.BUSY else logging.ERROR
                log.log(level, "change records: message %s not recorded (try %d of %d), SQS delivers it again in "
                        "%d s: %s", message.id, message.receive_count, self.settings.max_receive_count,
                        self.settings.visibility_timeout, result.detail)
        except QueueError as exc:
            log.error("change records: message %s: %s: %s; SQS delivers it again", message.id,
                      result.outcome.value, exc)
        return result

    def _release(self, message: Message) -> None:
        try:
            self.queue.release(message)
        except QueueError as exc:
            log.warning("change records: message %s left invisible until its visibility timeout: %s", message.id, exc)

    def stopped(self) -> None:
        try:
            self.store.forget_poller(self.owner)
        except (redis.RedisError, OSError):
            pass  # Redis may be gone first; the entry's age says the poller is not running
        log.info("change records: poller stopped")


def start_change_poller(config: Config, redis_url: str, stop: threading.Event) -> threading.Thread | None:
    """Start the poller thread of `tfbot serve` when change records are configured; it ends when `stop` is set."""
    if config.change_records is None:
        return None
    thread = threading.Thread(target=_loop, args=(config, redis_url, stop), name="tfbot change records",
                              daemon=True)
    thread.start()
    return thread


def _loop(config: Config, redis_url: str, stop: threading.Event) -> None:
    poller: ChangePoller | None = None
    try:
        poller = ChangePoller(config, connect(redis_url))
        while not stop.is_set():
            problem = poller.ready()
            if problem is None:
                break
            log.error("change records: not polling: %s; checking again in %.0f s", problem, NOT_READY_SECONDS)
            poller.store.beat(poller.owner, poller.settings.sqs_queue_url, problem)
            stop.wait(NOT_READY_SECONDS)
        while not stop.is_set():
            try:
                poller.poll_once(stop)
            except (QueueError, redis.RedisError, OSError) as exc:
                log.error("change records: %s; polling again in %.0f s", exc, RETRY_SECONDS)
                try:
                    poller.store.beat(poller.owner, poller.settings.sqs_queue_url, str(exc))
                except (redis.RedisError, OSError):
                    pass
                stop.wait(RETRY_SECONDS)
    except Exception:  # noqa: BLE001 - never take serve down; say loudly that change records stopped
        log.exception("the change-record poller stopped: changes are not recorded until tfbot restarts")
    finally:
        if poller is not None:
            poller.stopped()
