"""The `scenario` fixture: a running tfbot with a fake GitHub and one repository, stopped after the test."""
from __future__ import annotations

from typing import Callable, Iterator

import pytest

from tests.support.scenario import Scenario


@pytest.fixture
def make_scenario(tmp_path, fake_github, app_keys) -> Iterator[Callable[..., Scenario]]:
    made: list[Scenario] = []

    def make(**kwargs) -> Scenario:
        scenario = Scenario(tmp_path, fake_github, app_keys[0], **kwargs)
        made.append(scenario)
        return scenario

    yield make
    for scenario in made:
        scenario.stop()


def network_files(sc: Scenario, **resources: str) -> dict[str, str]:
    """The `network` project's main.tf: a vpc plus `resources` (name -> input), state outside the checkout."""
    return {"network/main.tf": sc.config_for("network", {"vpc": "10.0.0.0/16", **resources})}


@pytest.fixture
def network_scenario(make_scenario: Callable[..., Scenario]) -> Scenario:
    """A scenario whose main holds the `network` project, with alice and bob (write) and mo (maintain)."""
    from tests.support.scenario import REPO

    scenario = make_scenario()
    scenario.init_main(network_files(scenario))
    for user, role in (("alice", "write"), ("bob", "write"), ("mo", "maintain")):
        scenario.fake.set_permission(REPO, user, role)
    return scenario
