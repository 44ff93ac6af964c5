"""What one run of a project gets in its environment: the project's `env` (literal values and `ssm:` values),
names passed through from tfbot's environment, and the phase's short-lived AWS credentials.

Nothing else of tfbot's environment reaches a run (see bot/adapters/terraform.py): a failure here fails the
run with the reason on the PR (`RunEnv.error`), and starts no command.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from bot.adapters.credentials import CredentialsError, assume_role, session_name
from bot.adapters.secrets import SecretError, resolve_secret
from bot.adapters.terraform import RunEnv
from bot.config.models import AwsConfig, RunEnvConfig
from bot.models import Project

if TYPE_CHECKING:
    from bot.services import WorkerServices

Phase = Literal["plan", "apply"]


def run_environment(svc: WorkerServices, repo: str, pull: int, project: Project, phase: Phase,
                    run_id: str) -> RunEnv:
    """The RunEnv of one run of `project` for PR `pull` in `phase` (STS and SSM are asked now, once per run)."""
    repo_config = svc.config.repo_config(repo)
    settings = repo_config.run_settings(project.dir, project.workspace) if repo_config else RunEnvConfig()
    return build_run_env(settings, svc.config.aws, repo, pull, project.name, phase, run_id, os.environ)


def build_run_env(settings: RunEnvConfig, aws: AwsConfig, repo: str, pull: int, project: str, phase: Phase,
                  run_id: str, environ: Mapping[str, str]) -> RunEnv:
    """The RunEnv for `settings`: literal values, `ssm:` values (masked), `environ`'s passed-through names, and
    the phase's assumed role (its secret key and token masked). Never raises: a failure is `RunEnv.error`."""
    env: dict[str, str] = {name: environ[name] for name in settings.env_passthrough if name in environ}
    secrets: list[str] = []
    for name, value in settings.env.items():
        if value.strip().startswith("ssm:"):
            try:
                value = resolve_secret(value.strip(), aws)
            except SecretError as exc:
                return RunEnv(error=f"tfbot could not read {value.strip()} for env {name} of project {project}: {exc}")
            secrets.append(value)
        env[name] = value
    credentials = settings.credentials
    role = None if credentials is None else credentials.plan if phase == "plan" else credentials.apply
    if role is not None:
        try:
            keys = assume_role(role.aws_role_arn, session_name(repo, pull, phase, run_id), role.duration_seconds,
                               aws.region, aws.sts_endpoint_url)
        except CredentialsError as exc:
            return RunEnv(error=f"tfbot could not get the {phase} credentials of project {project}: {exc}")
        # The keys always win; a region the project's env names is kept.
        env.update({k: v for k, v in keys.items() if "REGION" not in k or k not in env})
        secrets += [keys["AWS_SECRET_ACCESS_KEY"], keys["AWS_SESSION_TOKEN"]]
    return RunEnv(env, tuple(secrets))
