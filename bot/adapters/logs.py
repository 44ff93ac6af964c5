"""Logging setup: one line per event, with every known secret masked before it is written."""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import Iterable

MASK = "***"


class SecretMasker(logging.Filter):
    """Replaces secret values (webhook secret, key, tokens registered at run time) in every record."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self._secrets: set[str] = set()
        for s in secrets:
            self.add(s)

    def add(self, secret: str) -> None:
        # Very short values would mask ordinary words; real secrets are long.
        if secret and len(secret) >= 6:
            self._secrets.add(secret)
            # A PEM key may be logged line by line.
            for line in secret.splitlines():
                if len(line) >= 16:
                    self._secrets.add(line)

    def mask(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.mask(message)
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.mask(formatted)
            mark_logged(record.exc_info[1])
        if masked != message:
            record.msg, record.args = masked, None
        return True


_masker = SecretMasker()


def masker() -> SecretMasker:
    """The process-wide masker: GitHub tokens are added to it as they are minted."""
    return _masker


def mark_logged(exc: BaseException | None) -> None:
    """Remember that this exception's traceback was written, so a caller up the stack logs one line only."""
    if exc is not None:
        try:
            exc.__tfbot_logged__ = True  # type: ignore[attr-defined]
        except AttributeError:
            pass


def was_logged(exc: BaseException | None) -> bool:
    return bool(getattr(exc, "__tfbot_logged__", False))


class JsonFormatter(logging.Formatter):
    """One JSON object a line (`log_format: json`), for log shippers."""

    def __init__(self, process: str):
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "process": self.process,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["traceback"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


# Libraries chatter at INFO about every HTTP request and every registry clean-up; ours say what happened to
# which PR. Theirs show at DEBUG.
QUIET_LIBRARIES = ("urllib3", "botocore", "boto3", "github.Requester", "rq.worker", "rq.scheduler", "rq.queue")


def library_level(level: str) -> int:
    """The level for chatty libraries: WARNING, unless tfbot itself logs at DEBUG."""
    return max(logging.WARNING, logging.getLevelName(level)) if level != "DEBUG" else logging.DEBUG


def setup_logging(level: str, secrets: Iterable[str], process: str, log_format: str = "text") -> None:
    """Configure the root logger for a tfbot process (serve, worker, web)."""
    for s in secrets:
        _masker.add(s)
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(process))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s [{process}:%(process)d] %(name)s: %(message)s"))
    handler.addFilter(_masker)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in QUIET_LIBRARIES:
        logging.getLogger(noisy).setLevel(library_level(level))
