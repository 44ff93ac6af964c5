"""Shared pytest setup: fixture modules live in tests/support/ and are registered here."""
pytest_plugins = [
    "tests.support.github_fixtures",
    "tests.support.terraform_fixtures",
    "tests.support.git_fixtures",
    "tests.support.aws_fixtures",
    "tests.support.app_fixtures",
    "tests.support.redis_fixtures",
    "tests.support.scenario_fixtures",
    "tests.support.services_fixtures",
    "tests.support.receivers",
    "tests.support.change_fixtures",
    "tests.support.layers",
]


def pytest_collection_modifyitems(items):
    from tests.support.layers import mark_layers

    mark_layers(items)

