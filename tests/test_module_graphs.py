"""Module graphs read from real git commits and cached in a real Redis (bot/lifecycle/module_graphs.py), and the
staleness rule that uses them (bot/lifecycle/targets.py `same_content`)."""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis

import bot.lifecycle.module_graphs as module_graphs
from bot.adapters.git import Checkouts
from bot.lifecycle.targets import same_content
from bot.models import Project
from tests.support.git_repos import RemoteRepo, Symlink

REPO = "acme/infra"
NET = 'module "net" {\n  source = "../../modules/net"\n}\n'


@pytest.fixture
def svc(tmp_path: Path, redis_conn: redis.Redis) -> Any:
    module_graphs._RECENT.clear()  # each test starts as a fresh work horse does
    return SimpleNamespace(checkouts=Checkouts(tmp_path / "data"), redis=redis_conn)


def seed(remote: RemoteRepo, svc: Any) -> str:
    sha = remote.commit("main", {
        "envs/prod/main.tf": NET,
        "envs/prod/common.tf": Symlink("../../shared/common.tf"),
        "envs/dev/main.tf": NET,
        "modules/net/main.tf": 'module "sub" { source = "./sub" }\n',
        "modules/net/sub/main.tf": 'resource "terraform_data" "s" {}\n',
        "shared/common.tf": 'variable "region" {}\n',
        "broken/main.tf": 'module "x" {\n',
    }, "Initial")
    svc.checkouts.fetch(REPO, remote.clone_url, ["refs/heads/main"])
    return sha


def push(remote: RemoteRepo, svc: Any, files: dict[str, Any]) -> str:
    sha = remote.commit("main", files)
    svc.checkouts.fetch(REPO, remote.clone_url, ["refs/heads/main"])
    return sha


def test_graph_of_a_commit_is_read_from_git_and_cached_in_redis(remote_repo: RemoteRepo, svc: Any,
                                                                  redis_conn: redis.Redis, tmp_path: Path) -> None:
    sha = seed(remote_repo, svc)

    graph = module_graphs.module_graph(svc, REPO, sha)

    assert graph.roots == {"envs/prod", "envs/dev", "broken"}
    assert graph.modules == {"modules/net", "modules/net/sub", "shared"}
    assert graph.reads("envs/prod") == {"modules/net", "modules/net/sub", "shared/common.tf"}
    assert [w.dirs for w in graph.warnings] == [("broken",)]
    # Another work horse (nothing cached in its process), on a host whose mirror lacks the commit: Redis answers.
    module_graphs._RECENT.clear()
    elsewhere = SimpleNamespace(checkouts=Checkouts(tmp_path / "empty"), redis=redis_conn)
    assert module_graphs.module_graph(elsewhere, REPO, sha) == graph


def test_a_new_commit_parses_only_the_files_no_earlier_commit_had(remote_repo: RemoteRepo, svc: Any,
                                                                   redis_conn: redis.Redis) -> None:
    first = seed(remote_repo, svc)
    module_graphs.module_graph(svc, REPO, first)
    parsed_files = set(redis_conn.scan_iter("tfbot:modcalls:*"))
    # One entry per distinct text: prod and dev hold the same main.tf, and the linked file is read once.
    assert len(parsed_files) == 5

    second = push(remote_repo, svc, {"modules/net/sub/main.tf": 'module "leaf" { source = "../../leaf" }\n',
                                     "modules/leaf/main.tf": ""})
    graph = module_graphs.module_graph(svc, REPO, second)

    assert len(set(redis_conn.scan_iter("tfbot:modcalls:*")) - parsed_files) == 2  # the two new texts
    assert graph.reads("envs/dev") == {"modules/net", "modules/net/sub", "modules/leaf"}


def test_a_plan_is_stale_when_anything_its_root_reads_changed(remote_repo: RemoteRepo, svc: Any) -> None:
    planned = seed(remote_repo, svc)
    prod = Project(repo=REPO, name="envs/prod", dir="envs/prod")

    def same(files: dict[str, Any]) -> bool:
        return same_content(svc, REPO, prod, push(remote_repo, svc, files), planned)

    assert same({"envs/dev/main.tf": NET + "# dev only\n"})
    assert not same({"modules/net/sub/main.tf": 'resource "terraform_data" "s2" {}\n'})  # a module's module
    remote_repo.set_branch("main", planned)
    assert not same({"shared/common.tf": 'variable "region" { default = "eu" }\n'})  # a linked file's target


def test_reading_a_large_repository(remote_repo: RemoteRepo, svc: Any, redis_conn: redis.Redis) -> None:
    """500 roots over 50 modules: the first graph, the next commit's, and a cached one. Prints the times."""
    files: dict[str, Any] = {f"modules/m{m}/main.tf": 'resource "terraform_data" "x" {}\n' for m in range(50)}
    for r in range(500):
        files[f"envs/r{r}/main.tf"] = (f'module "m" {{\n  source = "../../modules/m{r % 50}"\n}}\n'
                                       f'resource "terraform_data" "r" {{\n  input = "{r}"\n}}\n')
        files[f"envs/r{r}/variables.tf"] = 'variable "region" {\n  default = "eu-west-1"\n}\n'
    first = remote_repo.commit("main", files, "Big")
    svc.checkouts.fetch(REPO, remote_repo.clone_url, ["refs/heads/main"])
    times = []
    for sha in (first, push(remote_repo, svc, {"envs/r1/main.tf": 'module "m" { source = "../../modules/m2" }\n'})):
        module_graphs._RECENT.clear()
        start = time.perf_counter()
        graph = module_graphs.module_graph(svc, REPO, sha)
        times.append(time.perf_counter() - start)
    module_graphs._RECENT.clear()
    start = time.perf_counter()
    module_graphs.module_graph(svc, REPO, first)
    times.append(time.perf_counter() - start)
    print(f"graph of {len(files)} files: first {times[0]:.2f} s, next commit {times[1]:.2f} s, "
          f"cached {times[2] * 1000:.0f} ms")
    assert len(graph.roots) == 500 and len(graph.modules) == 50


def test_a_file_too_large_to_read_is_said_not_skipped(remote_repo: RemoteRepo, svc: Any) -> None:
    sha = remote_repo.commit("main", {
        "envs/prod/main.tf": NET + "# " + "x" * (1024 * 1024) + "\n",  # generated, over 1 MiB
        "modules/net/main.tf": "",
    }, "Initial")
    svc.checkouts.fetch(REPO, remote_repo.clone_url, ["refs/heads/main"])
    graph = module_graphs.module_graph(svc, REPO, sha)
    [warning] = graph.warnings
    assert "envs/prod/main.tf" in warning.text and "larger than 1 MiB" in warning.text


def test_parses_are_kept_as_they_come_so_an_interrupted_build_does_not_start_over(
        remote_repo: RemoteRepo, svc: Any, redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {f"envs/e{i}/main.tf": f'module "m" {{\n  source = "../../modules/m{i}"\n}}\n' for i in range(5)}
    sha = remote_repo.commit("main", files, "Initial")
    svc.checkouts.fetch(REPO, remote_repo.clone_url, ["refs/heads/main"])
    monkeypatch.setattr(module_graphs, "PARSES_PER_WRITE", 2)
    real, seen = module_graphs.parse_module_sources, []

    def parse_then_die(path: str, text: str) -> Any:
        seen.append(path)
        if len(seen) == 5:
            raise TimeoutError("the job's time ran out")  # as RQ's timeout would interrupt it
        return real(path, text)

    monkeypatch.setattr(module_graphs, "parse_module_sources", parse_then_die)
    with pytest.raises(TimeoutError):
        module_graphs.module_graph(svc, REPO, sha)
    assert len(list(redis_conn.scan_iter("tfbot:modcalls:*"))) == 4  # two batches of two reached Redis
