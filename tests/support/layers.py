"""Test layers: every test gets one marker from what it needs, so `pytest -m unit` is the fast core.

- `e2e`: marked by its module (starts tfbot processes).
- `terraform`: runs the real Terraform binary (asks for a Terraform fixture or a scenario).
- `redis`: talks to a real Redis server, no Terraform.
- `io`: real local servers, git repositories or files (fake GitHub, moto, git), neither Redis nor Terraform.
- `unit`: none of those; pure functions over values. A unit test that starts a process or opens a network
  connection fails, so the marker cannot lie.
"""
from __future__ import annotations

import socket
import subprocess

import pytest

LAYERS = ("unit", "io", "redis", "terraform", "e2e")
TERRAFORM = {"terraform_binary", "terraform", "tf_workdir", "tf_data_dir", "tf_state_dir", "make_scenario",
             "network_scenario", "terraform_old", "stub_tofu"}
REDIS = {"redis_url", "redis_conn", "worker_services"}
IO = {"fake_github", "moto_server_url", "make_remote_repo", "remote_repo", "services_remote", "github_client_for",
      "github_integration_for", "tmp_path", "tmp_path_factory", "make_receiver"}


def layer_of(item: pytest.Item) -> str:
    """The one layer of a test: its own marker if it has one, else the heaviest fixture it uses."""
    for name in reversed(LAYERS):
        if item.get_closest_marker(name) is not None:
            return name
    fixtures = set(getattr(item, "fixturenames", ()))
    if fixtures & TERRAFORM:
        return "terraform"
    if fixtures & REDIS:
        return "redis"
    if fixtures & IO:
        return "io"
    return "unit"


def mark_layers(items: list[pytest.Item]) -> None:
    for item in items:
        layer = layer_of(item)
        if item.get_closest_marker(layer) is None:
            item.add_marker(getattr(pytest.mark, layer))


class _NotInAUnitTest(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def _unit_tests_stay_pure(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test marked `unit` may not start a process nor connect a socket (it would belong to another layer)."""
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise _NotInAUnitTest(f"{request.node.nodeid} is marked unit but starts a process or opens a connection; "
                              f"give it the fixture it needs (see tests/support/layers.py)")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
