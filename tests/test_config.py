"""Config loading: defaults, environment overrides, ssm: secrets, and one clear line per problem."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.config import ConfigError, load_config

REPO_ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def minimal(private_key: str) -> dict:
    return {"github": {"app_id": 7, "private_key": private_key, "webhook_secret": "s3cr3t-value"}}


def test_minimal_config_gets_defaults(tmp_path, app_private_key):
    config = load_config(write(tmp_path, minimal(app_private_key)), environ={})
    assert config.github.api_url == "https://api.github.com"
    assert config.redis_url == ""
    assert config.data_dir == (tmp_path / "data").resolve()
    assert config.server.port == 8080 and config.workers == 2
    assert config.terraform.binary == "terraform"
    assert config.repo_config("acme/infra") is None


def test_example_config_in_repo_is_valid_with_env_secrets(app_private_key):
    env = {"TFBOT_GITHUB_APP_ID": "12", "TFBOT_GITHUB_PRIVATE_KEY": app_private_key, "TFBOT_WEBHOOK_SECRET": "abcdefgh"}
    config = load_config(REPO_ROOT / "config.yaml", environ=env)
    assert config.github.app_id == 12
    assert config.repo_config("acme/infra") is not None
    assert config.workflows_dir is None


def test_environment_overrides_yaml(tmp_path, app_private_key):
    data = minimal(app_private_key)
    data["redis_url"] = "redis://yaml:6379/0"
    env = {"TFBOT_REDIS_URL": "redis://env:6379/1", "TFBOT_SERVER_PORT": "9999", "TFBOT_WEBHOOK_SECRET": "from-env-secret"}
    config = load_config(write(tmp_path, data), environ=env)
    assert config.redis_url == "redis://env:6379/1"
    assert config.server.port == 9999
    assert config.github.webhook_secret == "from-env-secret"


def test_every_problem_is_reported_with_its_dotted_key(tmp_path):
    data = {
        "github": {"app_id": "abc", "private_key": "not a key", "api_url": "ftp://x"},
        "server": {"port": 70000},
        "workers": 0,
        "redis_url": "http://nope",
        "storage": {"backend": "s3"},
        "repos": [{"name": "noslash", "projects": [{"dir": "../etc", "workspace": "bad name"}], "apply_requirements": ["lgtm"]}],
        "typo_key": 1,
    }
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, data), environ={})
    keys = [p.split(":")[0] for p in err.value.problems]
    for expected in [
        "github.api_url", "github.app_id", "github.private_key", "github.webhook_secret", "server.port", "workers",
        "redis_url", "storage.s3.bucket", "repos[0].name", "repos[0].projects[0].dir", "repos[0].projects[0].workspace",
        "repos[0].apply_requirements", "typo_key",
    ]:
        assert expected in keys, (expected, err.value.problems)
    assert "not a key" not in str(err.value), "a secret's value must never be echoed"


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("github: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, environ={})


def test_projects_are_normalised(tmp_path, app_private_key):
    data = minimal(app_private_key)
    data["repos"] = [{"name": "acme/*", "apply_requirements": ["approved"],
                      "projects": [{"dir": "./network/", "workspace": "prod"}, {"dir": "."}]}]
    config = load_config(write(tmp_path, data), environ={})
    repo = config.repo_config("ACME/infra")
    assert repo is not None
    assert [(p.name, p.dir, p.workspace) for p in repo.projects] == [("network:prod", "network", "prod"), (".", ".", "default")]
    assert repo.projects[0].apply_requirements == ("approved",)
    assert repo.projects[0].when_modified == ("*.tf", "*.tfvars")


def test_ssm_secret_is_read_through_boto3(tmp_path, app_private_key, moto_server_url, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    ssm = boto3.client("ssm", region_name="us-east-1", endpoint_url=moto_server_url)
    ssm.put_parameter(Name="/tfbot/webhook", Value="from-ssm-secret", Type="SecureString")
    data = minimal(app_private_key)
    data["github"]["webhook_secret"] = "ssm:/tfbot/webhook"
    data["aws"] = {"region": "us-east-1", "endpoint_url": moto_server_url}
    config = load_config(write(tmp_path, data), environ={})
    assert config.github.webhook_secret == "from-ssm-secret"

    data["github"]["webhook_secret"] = "ssm:/tfbot/missing"
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, data), environ={})
    assert any(p.startswith("github.webhook_secret: cannot read ssm:/tfbot/missing") for p in err.value.problems)
