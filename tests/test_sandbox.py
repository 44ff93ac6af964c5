"""The runners and a run's environment: real bubblewrap and real Terraform hide what a PR must not see,
still stop Terraform gracefully, and a run gets only what its project's config names (per-phase STS
credentials through moto)."""
from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from bot.adapters.credentials import SESSION_NAME_MAX, session_name
from bot.adapters.runners import (BubblewrapRunner, PlainRunner, RunSpec, SandboxPolicy, bwrap_argv, choose_runner,
                                  probe_bubblewrap, tools_under_tmp)
from bot.adapters.terraform import RunEnv, Terraform
from bot.config import ConfigError, parse_config
from bot.config.models import AwsConfig, RepoConfig, RunEnvConfig
from bot.lifecycle.run_env import build_run_env
from bot.adapters import procs
from tests.support.tf_configs import write_config, write_slow_apply_config

SECRET = "tfbot-secret-0123456789abcdef"


# -- pure: bwrap's argv, session names, which settings a project gets -----------------------------------------

def test_bwrap_argv_hides_then_shows_again(tmp_path):
    data = tmp_path / "data"
    (data / "terraform" / "plugin-cache").mkdir(parents=True)
    key = tmp_path / "app.pem"
    key.write_text("k")
    work = data / "worktrees" / "pr1"
    (work / "network").mkdir(parents=True)
    (work / ".git").write_text("gitdir: elsewhere\n")
    policy = SandboxPolicy((data, key), data / "terraform" / "plugin-cache", data / "terraform" / "cli.tfrc")
    argv = bwrap_argv("bwrap", policy, RunSpec(["terraform", "plan"], work / "network", {}, (data / "tmp" / "x",)))
    text = " ".join(argv)
    for flag in ("--unshare-all", "--share-net", "--die-with-parent", "--proc /proc", "--ro-bind / /", "--tmpfs /tmp",
                 "--tmpfs /run"):
        assert flag in text
    assert f"--tmpfs {data}" in text and f"--ro-bind /dev/null {key}" in text
    assert f"--ro-bind {data}/terraform/plugin-cache" in text  # read-only, except for init
    assert f"--bind {work} {work}" in text  # the whole working copy (a project's ../modules), found by its .git
    assert f"--bind {data}/tmp/x" in text and argv[-2:] == ["--chdir", str(work / "network")]
    assert text.index(f"--tmpfs {data}") < text.index(f"--bind {work}")  # later mounts cover earlier ones
    init = bwrap_argv("bwrap", policy, RunSpec(["terraform", "init"], work, {}, cache_writable=True))
    assert f"--bind {data}/terraform/plugin-cache" in " ".join(init)


def test_session_names_fit_sts_and_keep_the_run():
    name = session_name("acme/infra", 12, "plan", "20240101120000-abcdef12")
    assert name == "acme.infra-pr12-plan-20240101120000-abcdef12"
    long = session_name("a-very-long-organisation/" + "r" * 80, 123456, "apply", "20240101120000-abcdef12")
    assert len(long) <= SESSION_NAME_MAX and long.endswith("-pr123456-apply-20240101120000-abcdef12")
    assert re.fullmatch(r"[\w+=,.@-]{2,64}", session_name("ünïcode/répo", 1, "plan", "r"))


def test_a_project_gets_the_repository_defaults_and_its_own_settings():
    repo = RepoConfig.model_validate({
        "name": "acme/*", "env": {"A": "repo", "B": "repo"}, "env_passthrough": ["X"],
        "credentials": {"plan": {"aws_role_arn": "arn:aws:iam::111111111111:role/plan"},
                        "apply": {"aws_role_arn": "arn:aws:iam::111111111111:role/apply"}},
        "projects": [{"dir": "network", "env": {"B": "project"}, "env_passthrough": ["Y"],
                      "credentials": {"apply": {"aws_role_arn": "arn:aws:iam::222222222222:role/net-apply"}}},
                     {"dir": "dns"}]})
    network = repo.run_settings("network", "default")
    assert network.env == {"A": "repo", "B": "project"} and network.env_passthrough == ("X", "Y")
    assert network.credentials is not None and network.credentials.plan is not None
    assert network.credentials.plan.aws_role_arn.endswith("role/plan")
    assert network.credentials.apply is not None and network.credentials.apply.aws_role_arn.endswith("net-apply")
    dns, elsewhere = repo.run_settings("dns", "default"), repo.run_settings("other", "default")
    assert dns.env == elsewhere.env == {"A": "repo", "B": "repo"} and elsewhere.credentials == repo.credentials


@pytest.mark.parametrize("settings, problem", [
    ({"repos": [{"name": "a/b", "env": {"TFBOT_WEBHOOK_SECRET": "x"}}]},
     "repos[0].env: TFBOT_WEBHOOK_SECRET: tfbot's own settings and secrets never reach a run"),
    ({"repos": [{"name": "a/b", "env_passthrough": ["TFBOT_REDIS_URL"]}]},
     "repos[0].env_passthrough: TFBOT_REDIS_URL: tfbot's own settings and secrets never reach a run"),
    ({"repos": [{"name": "a/b", "projects": [{"dir": "x", "env": {"HOME": "/root"}}]}]},
     "repos[0].projects[0].env: HOME is set by tfbot"),
    ({"repos": [{"name": "a/b", "credentials": {"plan": {"aws_role_arn": "admin"}}}]},
     "repos[0].credentials.plan.aws_role_arn: not an IAM role ARN"),
    ({"terraform": {"sandbox": {"mode": "docker"}}}, "terraform.sandbox.mode: must be 'auto', 'bubblewrap' or 'none'"),
    ({"terraform": {"sandbox": {"writable_paths": ["/nonexistent/state"]}}},
     "terraform.sandbox.writable_paths: no such directory: /nonexistent/state"),
])
def test_bad_run_settings_stop_startup_with_the_key(tmp_path, settings, problem):
    with pytest.raises(ConfigError) as raised:
        parse_config(settings, base_dir=tmp_path, github_app=False)
    assert any(line.startswith(problem) for line in raised.value.problems), raised.value.problems


# -- real bubblewrap and Terraform --------------------------------------------------------------------------------

@pytest.fixture
def host(tmp_path, tf_data_dir):
    """tfbot's secrets where a run could look for them: a file in data_dir, the config file, the App key, another
    PR's working copy; and this run's working copy (a git worktree root) with a local-backend state directory."""
    (tf_data_dir / "redis").mkdir()
    (tf_data_dir / "redis" / "secret-in-data-dir").write_text(SECRET)
    other = tf_data_dir / "worktrees" / "pr2"
    other.mkdir(parents=True)
    (other / "main.tf").write_text(f"# {SECRET}\n")
    config = tmp_path / "etc" / "config.yaml"
    config.parent.mkdir()
    config.write_text(f"webhook_secret: {SECRET}\n")
    key = tmp_path / "etc" / "app.pem"
    key.write_text(SECRET)
    work = tf_data_dir / "worktrees" / "pr1"
    (work / "network").mkdir(parents=True)
    (work / ".git").write_text("gitdir: elsewhere\n")
    state = tmp_path / "state"
    state.mkdir()
    return {"data": tf_data_dir, "config": config, "key": key, "other": other / "main.tf", "work": work / "network",
            "state": state}


def _bwrap(host) -> BubblewrapRunner:
    data = host["data"]
    return BubblewrapRunner(SandboxPolicy((data, host["config"], host["key"]), data / "terraform" / "plugin-cache",
                                          data / "terraform" / "cli.tfrc", writable=(host["state"],)))


def _snoop(host) -> str:
    """A shell command that prints whatever of tfbot's it can reach, and its environment."""
    files = " ".join(str(host[k]) for k in ("config", "key", "other")) + f" {host['data']}/redis/secret-in-data-dir"
    return (f"cat {files} /proc/{os.getpid()}/environ 2>&1; echo; env; echo processes=$(ls /proc | grep -c '^[0-9]'); "
            f"echo written > {host['state']}/ok && echo state-writable; echo x > {host['data']}/planted || true")


def test_a_sandboxed_run_sees_none_of_tfbots_secrets(terraform_binary, host, monkeypatch):
    assert probe_bubblewrap() == "", "bubblewrap must run here (it does in CI and the image)"
    monkeypatch.setenv("TFBOT_WEBHOOK_SECRET", SECRET)  # tfbot's own environment
    tf = Terraform(terraform_binary, host["data"], 60, runner=_bwrap(host))
    result = tf.run_custom(host["work"], ["sh", "-c", _snoop(host)], run=RunEnv({"PROJECT_VALUE": "given"}))

    assert result.ok, result.output
    assert SECRET not in result.output and "TFBOT_" not in result.output
    assert "PROJECT_VALUE=given" in result.output and "HOME=/tmp/home" in result.output
    processes = int(re.search(r"^processes=(\d+)$", result.output, re.MULTILINE).group(1))
    assert processes <= 8, "a fresh /proc shows only the sandbox's own few processes, not the host's"
    assert "state-writable" in result.output.splitlines()  # a writable_paths directory
    assert not (host["data"] / "planted").exists()


def test_without_the_sandbox_the_same_run_reads_them(terraform_binary, host, monkeypatch):
    """What the sandbox buys: the plain runner scrubs the environment, and nothing else."""
    monkeypatch.setenv("TFBOT_WEBHOOK_SECRET", SECRET)
    tf = Terraform(terraform_binary, host["data"], 60, runner=PlainRunner())
    result = tf.run_custom(host["work"], ["sh", "-c", _snoop(host)])
    assert result.output.count(SECRET) >= 4  # the four files (tfbot's /proc environ: see test_security_e2e.py)


def test_terraform_plans_and_applies_in_the_sandbox(terraform_binary, host):
    tf = Terraform(terraform_binary, host["data"], 120, runner=_bwrap(host))
    write_config(host["work"], {"a": "1"}, host["state"])
    plan_file = host["data"] / "tmp" / "run1" / "plan.tfplan"
    assert tf.init(host["work"]).ok
    assert tf.plan(host["work"], plan_file, "default").has_changes
    assert tf.show_plan(host["work"], plan_file).resource_changes == [("create", "terraform_data.a")]
    assert tf.apply(host["work"], plan_file, "default").ok
    assert (host["state"] / "terraform.tfstate").exists() and tf.state_pull(host["work"], "default")["resources"]


def test_a_timeout_stops_terraform_gracefully_inside_the_sandbox(terraform_binary, host):
    pid_file = host["work"] / "sleep.pid"
    tf = Terraform(terraform_binary, host["data"], 120, runner=_bwrap(host), kill_grace=25)
    write_slow_apply_config(host["work"], host["state"], pid_file)
    plan_file = host["data"] / "tmp" / "r" / "plan.tfplan"
    assert tf.init(host["work"]).ok and tf.plan(host["work"], plan_file, "default").ok
    tf.timeout = 12  # the provisioner sleeps 30 s: the timeout comes during it, also on a loaded machine
    result = tf.apply(host["work"], plan_file, "default")
    assert result.timed_out and "SIGKILL after" not in result.output  # it stopped within the grace
    # Terraform itself got the SIGTERM (not bwrap's SIGKILL): it stopped and saved its state.
    assert "Interrupt received" in result.output or "Stopping operation" in result.output, result.output
    assert (host["state"] / "terraform.tfstate").exists()


def test_sigterm_to_the_started_process_reaches_terraform(terraform_binary, host):
    """`tfbot serve` stops a run by SIGTERM to the work horse's child: here the forwarder in front of bwrap."""
    pid_file = host["work"] / "sleep.pid"
    tf = Terraform(terraform_binary, host["data"], 120, runner=_bwrap(host))
    write_slow_apply_config(host["work"], host["state"], pid_file)
    plan_file = host["data"] / "tmp" / "r" / "plan.tfplan"
    assert tf.init(host["work"]).ok and tf.plan(host["work"], plan_file, "default").ok
    done: list = []
    thread = threading.Thread(target=lambda: done.append(tf.apply(host["work"], plan_file, "default")))
    thread.start()
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    # The forwarder in front of bwrap (this process may have other children: a session's Redis server).
    [child] = [pid for pid in procs.children_of(os.getpid()) if procs.command_line(pid) == "sh -c"]
    os.kill(child, signal.SIGTERM)
    thread.join(60)
    [result] = done
    assert not result.ok and "Interrupt received" in result.output, result.output
    assert not procs.alive(child)


def test_auto_falls_back_with_a_warning_and_bubblewrap_refuses(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap here
    choice = choose_runner("auto", SandboxPolicy())
    assert choice.runner.name == "none" and "bubblewrap cannot run here" in choice.warning
    from bot.adapters.runners import SandboxError

    with pytest.raises(SandboxError, match="not found on PATH"):
        choose_runner("bubblewrap", SandboxPolicy())
    with pytest.raises(ConfigError) as raised:
        parse_config({"terraform": {"sandbox": {"mode": "bubblewrap"}}}, base_dir=tmp_path, github_app=False)
    assert raised.value.problems[0].startswith("terraform.sandbox.mode: bubblewrap cannot run here")


# -- a run's environment: SSM values, passthrough, per-phase STS credentials ----------------------------------

@pytest.fixture
def aws(moto_server_url, monkeypatch) -> AwsConfig:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return AwsConfig(region="us-east-1", endpoint_url=moto_server_url, sts_endpoint_url=moto_server_url)


def _settings(**raw: object) -> RunEnvConfig:
    return RunEnvConfig.model_validate(raw)


def test_each_phase_runs_as_its_own_assumed_role(aws):
    import boto3

    settings = _settings(credentials={"plan": {"aws_role_arn": "arn:aws:iam::123456789012:role/tfbot-plan"},
                                      "apply": {"aws_role_arn": "arn:aws:iam::123456789012:role/tfbot-apply"}})
    plan = build_run_env(settings, aws, "acme/infra", 7, "network", "plan", "run-1", {})
    apply = build_run_env(settings, aws, "acme/infra", 7, "network", "apply", "run-2", {})
    identities = {}
    for phase, run in (("plan", plan), ("apply", apply)):
        assert not run.error and run.env["AWS_REGION"] == "us-east-1"
        assert set(run.secrets) == {run.env["AWS_SECRET_ACCESS_KEY"], run.env["AWS_SESSION_TOKEN"]}
        sts = boto3.client("sts", region_name="us-east-1", endpoint_url=aws.sts_endpoint_url,
                           aws_access_key_id=run.env["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=run.env["AWS_SECRET_ACCESS_KEY"],
                           aws_session_token=run.env["AWS_SESSION_TOKEN"])
        identities[phase] = sts.get_caller_identity()["Arn"]
    assert identities["plan"].endswith("assumed-role/tfbot-plan/acme.infra-pr7-plan-run-1")
    assert identities["apply"].endswith("assumed-role/tfbot-apply/acme.infra-pr7-apply-run-2")
    assert plan.env["AWS_ACCESS_KEY_ID"] != apply.env["AWS_ACCESS_KEY_ID"]


def test_env_values_ssm_and_passthrough(aws):
    import boto3

    boto3.client("ssm", region_name="us-east-1", endpoint_url=aws.endpoint_url).put_parameter(
        Name="/infra/db", Value="db-password-from-ssm", Type="SecureString", Overwrite=True)
    settings = _settings(env={"TF_VAR_region": "eu-west-1", "TF_VAR_db": "ssm:/infra/db"},
                         env_passthrough=["SHARED", "ABSENT"])
    run = build_run_env(settings, aws, "acme/infra", 1, "network", "plan", "r", {"SHARED": "s", "OTHER": "o"})
    assert run.env == {"TF_VAR_region": "eu-west-1", "TF_VAR_db": "db-password-from-ssm", "SHARED": "s"}
    assert run.secrets == ("db-password-from-ssm",)


def test_credentials_that_cannot_be_had_fail_the_run_with_the_reason(aws, terraform_binary, tf_data_dir, tf_workdir):
    from bot.lifecycle.steps import failure_summary

    settings = _settings(credentials={"plan": {"aws_role_arn": "arn:aws:iam::123456789012:role/plan"}})
    broken = AwsConfig(region="us-east-1", sts_endpoint_url="http://127.0.0.1:9")  # nothing listens there
    run = build_run_env(settings, broken, "acme/infra", 1, "network", "plan", "r", {})
    assert run.error.startswith("tfbot could not get the plan credentials of project network: STS is unreachable")
    missing = build_run_env(_settings(env={"X": "ssm:/no/such"}), aws, "acme/infra", 1, "network", "plan", "r", {})
    assert "tfbot could not read ssm:/no/such for env X of project network: SSM answered ParameterNotFound" \
        in missing.error
    result = Terraform(terraform_binary, tf_data_dir, 60).init(tf_workdir, run=run)
    assert not result.ok and failure_summary(result).startswith("Error: tfbot could not get the plan credentials")


def test_tools_under_tmp_stay_runnable_and_what_is_hidden_inside_them_stays_hidden(terraform_binary, host, tmp_path):
    """A checkout under /tmp (as CI's may be): its virtualenv, the Terraform binary's folder and PATH's entries are
    shown again over the sandbox's private /tmp; data_dir, the config and the key are not, even inside them."""
    assert str(tmp_path).startswith("/tmp/")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "lib-marker").write_text("venv lib\n")
    tool = venv / "bin" / "tool"
    tool.write_text(f"#!/bin/sh\ncat {venv / 'lib-marker'}\n")
    tool.chmod(0o755)
    hidden = (host["data"], host["config"], host["key"], venv / "lib-marker-hidden")
    tools = tools_under_tmp(terraform_binary, f"{venv / 'bin'}:/usr/bin:/bin:/tmp", hidden)
    assert venv in tools and Path("/tmp") not in tools  # the virtualenv around its bin; never /tmp itself
    policy = SandboxPolicy(hidden, tools=tools + (host["config"].parent,))
    tf = Terraform(terraform_binary, host["data"], 60, runner=BubblewrapRunner(policy))
    result = tf.run_custom(host["work"], [str(tool)])
    assert result.ok and "venv lib" in result.output, result.output
    snoop = tf.run_custom(host["work"], ["cat", str(host["config"]), str(host["key"])])
    assert SECRET not in snoop.output  # shown folder, hidden files: the files stay hidden
