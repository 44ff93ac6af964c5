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
