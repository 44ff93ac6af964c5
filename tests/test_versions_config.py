"""Versions in the configuration: `terraform.binaries` and `tofu.binaries` in config.yaml, checked at startup by
running each binary (real Terraform 1.0.3 and 1.11.4, the OpenTofu STAND-IN of tests/support/stub_tofu.py, and a
script reporting 0.15.5), `terraform_version` and `engine` in config.yaml and tfbot.yaml, and check-config's line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, parse_config
from bot.config.models import DEFAULT_OVERRIDES, RepoConfig
from bot.config.repo_file import schema, settings
from tests.support.tfbot_process import free_port, write_config

SERVER = RepoConfig(name="acme/*")


def _problems(raw: dict, tmp_path: Path, check: bool = False) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({"data_dir": str(tmp_path / "data"), **raw}, base_dir=tmp_path, check_terraform=check,
                     github_app=False)
    return caught.value.problems


@pytest.mark.parametrize("raw, problem", [
    ({"repos": [{"name": "a/*", "projects": [{"dir": "x", "terraform_version": "latest"}]}]},
     "repos[0].projects[0].terraform_version: 'latest' is not a version constraint (HashiCorp syntax"),
    ({"repos": [{"name": "a/*", "projects": [{"dir": "x", "engine": "pulumi"}]}]},
     "repos[0].projects[0].engine: must be 'terraform' or 'opentofu'"),
    ({"terraform": {"binaries": {"1.x": "/opt/terraform"}}},
     "terraform.binaries: '1.x': the key is the version the binary reports: '1.x' is not a version such as 1.11.4"),
    ({"tofu": {"binaries": {"1.8.5": ""}}}, "tofu.binaries: '1.8.5': a path, or a name on PATH, is required"),
])
def test_a_bad_value_is_a_problem_naming_its_key(raw, problem, tmp_path):
    found = _problems(raw, tmp_path)
    assert any(line.startswith(problem) for line in found), found


def test_startup_runs_each_listed_binary_and_names_the_key_it_contradicts(terraform_binary, terraform_old, stub_tofu,
                                                                           tmp_path):
    ancient = tmp_path / "bin" / "terraform-0.15"
    ancient.parent.mkdir()
    ancient.write_text('#!/bin/sh\necho \'{"terraform_version": "0.15.5", "platform": "linux_amd64"}\'\n')
    ancient.chmod(0o755)
    tofu, _ = stub_tofu
    found = _problems({"terraform": {"binaries": {"1.0.3": terraform_old, "1.9.8": terraform_binary,
                                                  "1.5.7": str(tmp_path / "nowhere" / "terraform"),
                                                  "0.15.5": str(ancient)}},
                       "tofu": {"binaries": {"1.9.0": tofu}}}, tmp_path, check=True)
    assert found == [
        f'terraform.binaries."1.9.8": {terraform_binary} reports terraform 1.11.4, not 1.9.8: the key is the version '
        "of the binary it names",
        f'terraform.binaries."1.5.7": \'{tmp_path}/nowhere/terraform\' not found: a path to the terraform binary, or '
        "a name on PATH",
        f'terraform.binaries."0.15.5": {ancient} is terraform 0.15.5, older than 1.0, which tfbot does not run',
        f'tofu.binaries."1.9.0": {tofu} reports tofu 1.8.5, not 1.9.0: the key is the version of the binary it names',
    ]
    # Right keys: nothing to say; without the startup check, nothing is run at all.
    parse_config({"data_dir": str(tmp_path / "data"), "terraform": {"binaries": {"1.0.3": terraform_old}},
                  "tofu": {"binaries": {"1.8.5": tofu}}}, base_dir=tmp_path, check_terraform=True, github_app=False)


def test_check_config_shows_the_versions_of_each_engine(terraform_old, stub_tofu, tmp_path, app_private_key):
    tofu, _ = stub_tofu
    settings_ = {"github": {"api_url": "http://127.0.0.1:9/api/v3", "app_id": 1234, "private_key": app_private_key,
                            "webhook_secret": "s", "retries": 0},
                 "server": {"host": "127.0.0.1", "port": free_port()}, "data_dir": str(tmp_path / "data"),
                 "terraform": {"binaries": {"1.0.3": terraform_old}}, "repos": [{"name": "acme/*"}]}
    path = write_config(tmp_path, settings_)
    said = subprocess.run([sys.executable, "-m", "bot", "check-config", "--config", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert said.returncode == 0, said.stderr
    assert "  versions:  Terraform 1.0.3 and 1.11.4\n" in said.stdout
    (tmp_path / "tofu").mkdir()
    with_tofu = write_config(tmp_path / "tofu", {**settings_, "tofu": {"binaries": {"1.8.5": tofu}}})
    said = subprocess.run([sys.executable, "-m", "bot", "check-config", "--config", str(with_tofu)],
                          capture_output=True, text=True, timeout=60)
    assert "  versions:  Terraform 1.0.3 and 1.11.4; OpenTofu 1.8.5\n" in said.stdout, said.stderr


# -- tfbot.yaml --------------------------------------------------------------------------------------------------

def test_tfbot_yaml_may_pin_a_version_and_an_engine_by_default():
    assert {"terraform_version", "engine"} <= set(DEFAULT_OVERRIDES)
    found = settings(SERVER, "projects:\n  - dir: legacy\n    terraform_version: '~> 1.0.0'\n"
                             "  - dir: tofu\n    engine: opentofu\n")
    assert found.problems == ()
    legacy, tofu = found.config.projects
    assert (legacy.terraform_version, legacy.engine) == ("~> 1.0.0", "terraform")
    assert (tofu.terraform_version, tofu.engine) == ("", "opentofu")
    props = schema()["$defs"]["ProjectConfig"]["properties"]
    assert "terraform_version" in props and props["engine"]["enum"] == ["terraform", "opentofu"]


def test_tfbot_yaml_problems_name_the_line_and_key():
    found = settings(SERVER, "projects:\n  - dir: legacy\n    terraform_version: '>= 1.0,'\n"
                             "  - dir: tofu\n    engine: tofu\n")
    assert [p.text() for p in found.problems] == [
        "tfbot.yaml:3: projects[0].terraform_version: '' is not a version constraint (HashiCorp syntax: an operator "
        "=, !=, >, >=, <, <= or ~> before a version such as 1.9.8, parts joined by commas)",
        "tfbot.yaml:5: projects[1].engine: must be 'terraform' or 'opentofu', got 'tofu'",
    ]


def test_a_server_that_keeps_versions_to_itself_refuses_them_in_tfbot_yaml():
    strict = RepoConfig(name="acme/*", allowed_overrides=("projects",))
    found = settings(strict, "projects:\n  - dir: legacy\n    terraform_version: 1.0.3\n")
    assert [p.text() for p in found.problems] == [
        "tfbot.yaml:3: projects[0].terraform_version: the server does not let a repository set this "
        "(repos[].allowed_overrides of acme/*: projects)"]
