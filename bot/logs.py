"""Logging setup: one line per event, with every known secret masked before it is written."""
from __future__ import annotations

import logging
import sys
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
        if masked != message:
            record.msg, record.args = masked, None
        return True


_masker = SecretMasker()


def masker() -> SecretMasker:
    """The process-wide masker: GitHub tokens are added to it as they are minted."""
    return _masker


def setup_logging(level: str, secrets: Iterable[str], process: str) -> None:
    """Configure the root logger for a tfbot process (serve, worker)."""
    for s in secrets:
        _masker.add(s)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s [{process}:%(process)d] %(name)s: %(message)s"))
    handler.addFilter(_masker)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries chatter at INFO about every HTTP request; ours say what happened to which PR.
    for noisy in ("urllib3", "botocore", "boto3", "github.Requester"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
