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
    assert err.value.problems == [
        "github.api_url: must be an http(s) URL such as https://api.github.com or https://HOST/api/v3",
        "github.app_id: must be a whole number, got 'abc'",
        "github.private_key: not a PEM-encoded RSA private key (download one from the GitHub App settings)",
        "github.webhook_secret: missing: the GitHub App's webhook secret (or TFBOT_WEBHOOK_SECRET)",
        "server.port: must be at most 65535, got 70000",
        "redis_url: must start with redis://, rediss:// or unix:// (leave it empty for the embedded Redis)",
        "workers: must be at least 1, got 0",
        "repos[0].name: must be OWNER/REPO or a pattern such as acme/*, got 'noslash'",
        "repos[0].projects[0].dir: must be a path inside the repository, got '../etc'",
        "repos[0].projects[0].workspace: 1-90 letters, digits, '-', '_' or '.', not starting with '-', not only dots",
        "repos[0].apply_requirements[0]: must be 'approved' or 'mergeable', got 'lgtm'",
        "storage.s3.bucket: required when storage.backend is s3",
        "typo_key: unknown key",
    ]
    assert "not a key" not in str(err.value), "a secret's value must never be echoed"


def test_a_float_keys_limit_reads_as_written(tmp_path, app_private_key):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, {**minimal(app_private_key), "shutdown_grace": -5}), environ={})
    assert "shutdown_grace: must be at least 0, got -5" in err.value.problems


def problems(path: Path, environ: dict | None = None, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(path, environ=environ or {}, **kwargs)
    return err.value.problems


def test_missing_file_and_invalid_yaml_name_the_file_line_and_column(tmp_path):
    assert problems(tmp_path / "nope.yaml") == [
        f"{tmp_path / 'nope.yaml'}: no such config file (start from config.yaml in the tfbot repository)"]
    bad = tmp_path / "config.yaml"
    bad.write_text('github:\n  app_slug: "tfbot\n  app_id: 1\n')
    assert problems(bad) == [f"{bad}:2:13: unclosed quoted string"]
    bad.write_text("github:\n  app_id: 1\n server: {}\n")
    [line] = problems(bad)
    assert line.startswith(f"{bad}:3:2: ") and "\n" not in line


def test_duplicate_keys_are_errors_not_last_one_wins(tmp_path, app_private_key):
    path = tmp_path / "config.yaml"
    path.write_text("github:\n  app_id: 7\n  webhook_secret: s3cr3t-value\n"
                    "server:\n  port: 8081\n  host: 0.0.0.0\n  port: 8082\nworkers: 1\nworkers: 3\n")
    assert problems(path, {"TFBOT_GITHUB_PRIVATE_KEY": app_private_key}) == [
        f"{path}:7:3: server.port: duplicate key (first on line 5)",
        f"{path}:9:1: workers: duplicate key (first on line 8)",
    ]


def test_a_value_from_the_environment_is_named_by_its_variable(tmp_path, app_private_key):
    env = {"TFBOT_GITHUB_APP_ID": "twelve", "TFBOT_SERVER_PORT": "0"}
    assert problems(write(tmp_path, minimal(app_private_key)), env) == [
        "github.app_id (TFBOT_GITHUB_APP_ID): must be a whole number, got 'twelve'",
        "server.port (TFBOT_SERVER_PORT): must be at least 1, got '0'",
    ]


def test_missing_keys_say_where_to_set_them(tmp_path):
    assert problems(write(tmp_path, {})) == [
        "github.app_id: missing: the numeric App ID from the GitHub App settings (or TFBOT_GITHUB_APP_ID)",
        "github.private_key: missing: set github.private_key_path, or TFBOT_GITHUB_PRIVATE_KEY",
        "github.webhook_secret: missing: the GitHub App's webhook secret (or TFBOT_WEBHOOK_SECRET)",
    ]


def test_a_private_key_file_that_is_no_key_is_reported_at_the_path(tmp_path, app_private_key):
    data = minimal(app_private_key)
    del data["github"]["private_key"]
    (tmp_path / "app.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    data["github"]["private_key_path"] = "app.pem"
    assert problems(write(tmp_path, data)) == [
        f"github.private_key_path: {tmp_path / 'app.pem'} is not a PEM-encoded RSA private key "
        "(download one from the GitHub App settings)"]
    data["github"]["private_key_path"] = "absent.pem"
    assert problems(write(tmp_path, data)) == [
        f"github.private_key_path: cannot read {tmp_path / 'absent.pem'}: No such file or directory"]
    (tmp_path / "app.pem").write_text(app_private_key)
    data["github"]["private_key_path"] = "app.pem"
    assert load_config(write(tmp_path, data), environ={}).github.private_key == app_private_key.strip()


def test_typos_get_a_did_you_mean(tmp_path, app_private_key):
    data = minimal(app_private_key)
    data.update(worker=3, repos=[{"name": "acme/*", "aply_requirements": ["approved"]}],
                server={"admins": [{"name": "ops", "password": "hunter2-hunter2"}]})
    assert problems(write(tmp_path, data)) == [
        "server.admins[0].password_hash: missing: a hash made by `tfbot hash-password` (never the password itself)",
        "server.admins[0].password: unknown key: store only a hash, made by `tfbot hash-password`",
        "repos[0].aply_requirements: unknown key; did you mean 'apply_requirements'?",
        "worker: unknown key; did you mean 'workers'?",
    ]


def test_the_terraform_check_runs_alongside_the_other_problems(tmp_path, app_private_key):
    data = minimal(app_private_key)
    data.update(workers="many", terraform={"binary": "no-such-terraform"})
    lines = problems(write(tmp_path, data), check_terraform=True)
    assert lines[0] == "workers: must be a whole number, got 'many'"
    assert lines[1].startswith("terraform.binary: terraform binary 'no-such-terraform' not found: install Terraform")
    assert len(lines) == 2


def test_unknown_workflows_are_named_with_a_did_you_mean_in_one_round(tmp_path, app_private_key):
    """A workflow name no workflow file defines fails at load, not in every plan and merge at run time."""
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "terragrunt.yaml").write_text(
        "plan:\n  steps: [init, plan]\napply:\n  steps: [apply]\n")
    data = minimal(app_private_key)
    data.update(workers=0, workflows_dir="workflows", repos=[
        {"name": "acme/*", "workflow": "terragrunt-typo", "projects": [{"dir": "a"}]},
        {"name": "other/*", "projects": [{"dir": "a"}, {"dir": "b", "workflow": "defualt"},
                                         {"dir": "c", "workflow": "terragrunt"}, {"dir": "d", "workflow": "zzz"}]},
    ])
    assert problems(write(tmp_path, data)) == [
        "workers: must be at least 1, got 0",
        "repos[0].workflow: unknown workflow 'terragrunt-typo' (did you mean 'terragrunt'?)",
        "repos[1].projects[1].workflow: unknown workflow 'defualt' (did you mean 'default'?)",
        "repos[1].projects[3].workflow: unknown workflow 'zzz' (the workflows are: default, terragrunt)",
    ]
    del data["workers"], data["repos"][1]["projects"][3]
    data["repos"][0]["workflow"] = data["repos"][1]["projects"][1]["workflow"] = "terragrunt"
    config = load_config(write(tmp_path, data), environ={})
    assert [p.workflow for r in config.repos for p in r.projects] == ["terragrunt", "default", "terragrunt", "terragrunt"]


def test_a_broken_workflow_file_is_a_config_problem(tmp_path, app_private_key):
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "custom.yaml").write_text("plan:\n  steps: [init]\napply:\n  steps: [apply]\n")
    data = minimal(app_private_key)
    data.update(workflows_dir="workflows", repos=[{"name": "acme/*", "workflow": "custom"}])
    assert problems(write(tmp_path, data)) == [
        f"workflows_dir: {tmp_path / 'workflows' / 'custom.yaml'}: plan.steps: the 'plan' step is required"]


def test_repository_apply_settings(tmp_path, app_private_key):
    data = minimal(app_private_key)
    data["repos"] = [{"name": "acme/*", "apply_branches": ["release/*", "hotfix"], "allow_draft_apply": True},
                     {"name": "other/*"}]
    config = load_config(write(tmp_path, data), environ={})
    acme, other = config.repos
    assert acme.apply_branches == ("release/*", "hotfix") and acme.allow_draft_apply is True
    assert other.apply_branches == () and other.allow_draft_apply is False


def test_schema_command_prints_the_json_schema(capsys):
    import json

    from bot.cli import main

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Config" and "github" in schema["properties"]
    assert schema["$defs"]["GitHubConfig"]["properties"]["app_id"]["env"] == "TFBOT_GITHUB_APP_ID"
    server = schema["$defs"]["ServerConfig"]["properties"]["port"]
    assert server["default"] == 8080 and server["env"] == "TFBOT_SERVER_PORT"
    assert "apply_branches" in schema["$defs"]["RepoConfig"]["properties"]


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


def test_allow_draft_apply_is_a_per_repo_boolean(tmp_path, app_private_key):
    data = minimal(app_private_key)
    data["repos"] = [{"name": "acme/drafts", "allow_draft_apply": True}, {"name": "acme/*"}]
    config = load_config(write(tmp_path, data), environ={})
    assert config.repo_config("acme/drafts").allow_draft_apply is True
    assert config.repo_config("acme/infra").allow_draft_apply is False
    data["repos"] = [{"name": "acme/*", "allow_draft_apply": "sometimes"}]
    with pytest.raises(ConfigError, match=r"repos\[0\]\.allow_draft_apply"):
        load_config(write(tmp_path, data), environ={})


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
    # One true line: not also "missing" for the secret SSM could not give.
    assert problems(write(tmp_path, data)) == [
        "github.webhook_secret: cannot read ssm:/tfbot/missing: SSM answered ParameterNotFound for parameter "
        "/tfbot/missing"]


def test_the_configuration_reference_documents_every_key_and_its_variable():
    """The reference table cannot drift from the models: each key has its row, naming its variable."""
    from bot.config.loading import ENV_OVERRIDES, _extra, _fields
    from bot.config.models import Config, ProjectConfig, RepoConfig

    page = "docs/configuration.md"
    reference = (REPO_ROOT / page).read_text()
    rows = {line.split("|")[1].strip().strip("`"): line for line in reference.splitlines() if line.startswith("| `")}
    from pydantic import BaseModel

    for key, info in _fields(Config):
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            continue  # a section, whose keys have the rows
        assert key in rows, f"{page} has no row for {key}"
        variable = _extra(info).get("env")
        assert variable is None or f"`{variable}`" in rows[key], f"{page}'s row for {key} does not name {variable}"
    assert len(ENV_OVERRIDES) >= 14
    for model in (RepoConfig, ProjectConfig):
        for key in model.model_fields:
            assert key in rows, f"{page} has no row for {model.__name__}.{key}"


def test_check_runs_and_statuses_are_on_by_default_and_never_both_off(tmp_path, app_private_key):
    config = load_config(write(tmp_path, minimal(app_private_key)), environ={})
    assert (config.github.check_runs, config.github.statuses) == (True, True)
    data = minimal(app_private_key)
    data["github"].update(check_runs=False)
    assert load_config(write(tmp_path, data), environ={}).github.statuses is True
    data["github"].update(statuses="false")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, data), environ={})
    assert err.value.problems == [
        "github.statuses: github.check_runs and github.statuses are both false: a commit would show no result of "
        "tfbot's plans and applies; set one of them to true"]
