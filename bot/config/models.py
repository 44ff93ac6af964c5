"""The server configuration as pydantic models: every key, its type, default, environment variable and meaning.

These field descriptions are the reference of `config.yaml` (`tfbot schema` prints them as JSON Schema).
A field's environment variable is named in its `json_schema_extra` (`env`), so overrides live in one place;
`secret` fields are never echoed in a problem and may be written `ssm:/path/name`.
"""
from __future__ import annotations

import difflib
import fnmatch
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError

from bot.config.durations import Duration, parse_duration
from bot.plan_args import DEFAULT_ALLOWED as DEFAULT_EXTRA_ARGS
from bot.plan_args import entry_problem

DEFAULT_WHEN_MODIFIED = ("*.tf", "*.tfvars")
APPLY_REQUIREMENTS = ("approved", "mergeable")
PROJECT_NAME_RE = re.compile(r"^[A-Za-z0-9_.:/-]{1,100}$")
ADMIN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Hash formats werkzeug.security.check_password_hash understands: "method$salt$hash".
_PASSWORD_HASH_RE = re.compile(r"^(scrypt|pbkdf2)(:[A-Za-z0-9:]*)?\$[^$]+\$[0-9a-f]+$")
Requirement = Literal["approved", "mergeable"]
# The GitHub roles (bot.models.REPO_ROLES) that may be required to unlock from the page.
UnlockPermission = Literal["write", "maintain", "admin"]
# What a repository's tfbot.yaml may set, when the server allows it (repos[].allowed_overrides).
Override = Literal["projects", "when_modified", "autoplan", "workflow", "depends_on", "execution_order_group",
                   "apply_requirements", "autodiscover", "parallel_plan", "parallel_apply", "terraform_version",
                   "engine"]
# Ordering is the repository's business (it changes when, not whether, an apply runs); requirements are not.
# terraform_version and engine only choose among the binaries the server installed, as required_version does.
DEFAULT_OVERRIDES: tuple[Override, ...] = ("projects", "when_modified", "autoplan", "workflow", "depends_on",
                                           "execution_order_group", "parallel_plan", "parallel_apply",
                                           "terraform_version", "engine")


def env(name: str, secret: bool = False) -> dict[str, Any]:
    """Field metadata: the environment variable that overrides the key, and whether its value is a secret."""
    return {"env": name, "secret": True} if secret else {"env": name}


SECRET: dict[str, Any] = {"secret": True}


def at_key(key: str, reason: str) -> PydanticCustomError:
    """A problem a model-level check finds at one of the model's keys (`key` is relative to the model)."""
    return PydanticCustomError("at_key", "{key}: {reason}", {"key": key, "reason": reason})


def unknown_workflow(name: str, known: frozenset[str]) -> str:
    """Why `name` is not a workflow, with the nearest known name or else the list (pure)."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"the workflows are: {', '.join(sorted(known))}"
    return f"unknown workflow {name!r} ({hint})"


def _workflows(info: ValidationInfo) -> frozenset[str] | None:
    """The workflow names loading found (built-in and workflows_dir); None where none were looked for (a model
    built in code, or a workflows_dir that cannot be read, which is reported at that key instead)."""
    return (info.context or {}).get("workflows")


def _check_workflow(value: str, info: ValidationInfo) -> str:
    """A name that no workflow defines would fail every plan and merge of the project at run time: refuse it here."""
    known = _workflows(info)
    if known is not None and value not in known:
        raise ValueError(unknown_workflow(value, known))
    return value


def _plan_option(entry: str) -> str:
    """An entry of `repos[].extra_args` must name a plan option tfbot knows (bot/plan_args.py)."""
    problem = entry_problem(entry)
    if problem:
        raise ValueError(problem)
    return entry


PlanOption = Annotated[str, AfterValidator(_plan_option)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)


def _one_or_many(value: Any) -> Any:
    """`when_modified: "*.tf"` means one pattern."""
    return [value] if isinstance(value, str) else value


MAX_GLOB_STARS = 3  # `**` segments in one glob: each multiplies what a match may try on a deep path


def _bounded_globs(value: tuple[str, ...]) -> tuple[str, ...]:
    """Globs a changed path is matched against, from a config a PR may write (tfbot.yaml): bounded in length and in
    `**` segments, so no pattern can make a match take seconds."""
    for pattern in value:
        if len(pattern) > 256:
            raise ValueError(f"a pattern is longer than 256 characters: {pattern[:40]!r}...")
        segments = pattern.split("/")
        # Consecutive `**` count once: they match what one does (detection collapses them).
        runs = sum(1 for i, seg in enumerate(segments) if seg == "**" and (i == 0 or segments[i - 1] != "**"))
        if runs > MAX_GLOB_STARS:
            raise ValueError(f"{pattern!r} has more than {MAX_GLOB_STARS} `**` segments")
    return value


class GitHubConfig(_Model):
    """The GitHub App tfbot acts as."""

    api_url: str = Field("https://api.github.com", json_schema_extra=env("TFBOT_GITHUB_API_URL"),
                         description="GitHub's REST API; GitHub Enterprise Server: https://HOST/api/v3")
    # Required unless the command only reads Redis (`tfbot locks`, `tfbot audit`): see _needs_app.
    app_id: int | None = Field(None, validate_default=True, json_schema_extra=env("TFBOT_GITHUB_APP_ID"),
                               description="the numeric App ID from the GitHub App settings (required)")
    private_key: str = Field("", repr=False, validate_default=True, json_schema_extra=env("TFBOT_GITHUB_PRIVATE_KEY", True),
                             description="the App's PEM private key itself; or set github.private_key_path")
    private_key_path: str = Field("", json_schema_extra=env("TFBOT_GITHUB_PRIVATE_KEY_PATH"),
                                  description="file holding the App's PEM private key, relative to the config file")
    webhook_secret: str = Field("", repr=False, validate_default=True, json_schema_extra=env("TFBOT_WEBHOOK_SECRET", True),
                                description="the GitHub App's webhook secret (required)")
    app_slug: str = Field("tfbot", json_schema_extra=env("TFBOT_GITHUB_APP_SLUG"),
                          description="the App's URL name: its comments are written by <app_slug>[bot]")
    retries: int = Field(3, ge=0, le=10, description="retries of a failed GitHub call (5xx, secondary rate limit)")
    timeout: float = Field(15.0, ge=1, description="seconds per GitHub request")
    # PyGithub waits 1 s before every write by default; GitHub asks for spacing, not a full second.
    write_interval: float = Field(0.25, ge=0, description="seconds between two writes (comments, statuses) of one run")
    web_url: str = Field("https://github.com", json_schema_extra=env("TFBOT_GITHUB_WEB_URL"),
                         description="GitHub's web address, where users sign in; GitHub Enterprise Server: "
                                     "https://HOST")
    client_id: str = Field("", json_schema_extra=env("TFBOT_GITHUB_CLIENT_ID"),
                           description="the App's client ID, for \"Sign in with GitHub\" on the lock page; empty: "
                                       "local admins only")
    client_secret: str = Field("", repr=False, json_schema_extra=env("TFBOT_GITHUB_CLIENT_SECRET", True),
                               description="a client secret generated in the App's settings (with client_id)")
    check_runs: bool = Field(True, description="a check run per project and command (`tfbot/plan: <project>`), with "
                             "annotations and an Apply button")
    statuses: bool = Field(True, description="the commit statuses `tfbot/plan` and `tfbot/apply`, for branch "
                           "protection rules that require them")

    @model_validator(mode="after")
    def _reports_somewhere(self) -> "GitHubConfig":
        if not self.check_runs and not self.statuses:
            raise at_key("statuses", "github.check_runs and github.statuses are both false: a commit would show no "
                         "result of tfbot's plans and applies; set one of them to true")
        return self

    @field_validator("api_url", "web_url")
    @classmethod
    def _http_url(cls, value: str, info: ValidationInfo) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            examples = ("https://api.github.com or https://HOST/api/v3" if info.field_name == "api_url"
                        else "https://github.com or https://HOST")
            raise ValueError(f"must be an http(s) URL such as {examples}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _client_pair(self) -> "GitHubConfig":
        # One without the other would show a sign-in button that can only fail.
        if self.client_id and not self.client_secret:
            raise at_key("client_secret", "missing: GitHub sign-in needs the App's client secret with its client_id "
                                          "(or TFBOT_GITHUB_CLIENT_SECRET)")
        if self.client_secret and not self.client_id:
            raise at_key("client_id", "missing: GitHub sign-in needs the App's client ID with its client_secret "
                                      "(or TFBOT_GITHUB_CLIENT_ID)")
        return self

    @property
    def sign_in(self) -> bool:
        """Whether users may sign in to the lock page with GitHub (client_id and client_secret are set)."""
        return bool(self.client_id and self.client_secret)

    @field_validator("app_id")
    @classmethod
    def _app_id(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None and _needs_app(info):
            raise ValueError("missing: the numeric App ID from the GitHub App settings (or TFBOT_GITHUB_APP_ID)")
        if value is not None and value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: str, info: ValidationInfo) -> str:
        if not value and _needs_app(info):
            raise ValueError("missing: the GitHub App's webhook secret (or TFBOT_WEBHOOK_SECRET)")
        return value

    @field_validator("private_key")
    @classmethod
    def _rsa_key(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            if _needs_app(info):
                raise ValueError("missing: set github.private_key_path, or TFBOT_GITHUB_PRIVATE_KEY")
            return value
        if not is_rsa_private_key(value):
            raise ValueError("not a PEM-encoded RSA private key (download one from the GitHub App settings)")
        return value


class AdminConfig(_Model):
    """One person who may sign in to the lock page and unlock; the hash comes from `tfbot hash-password`."""

    name: str = Field(description="their GitHub login, so PR comments name them")
    password_hash: str = Field(repr=False, json_schema_extra=SECRET, description="a hash made by `tfbot hash-password` (never the password itself)")

    @field_validator("name")
    @classmethod
    def _login(cls, value: str) -> str:
        if not ADMIN_NAME_RE.match(value):
            raise ValueError("1-64 letters, digits, '.', '_' or '-' (their GitHub login, so PR comments name them)")
        return value

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        if not _PASSWORD_HASH_RE.match(value):
            raise ValueError("not a password hash: make one with `tfbot hash-password`")
        return value


class ServerConfig(_Model):
    """The web server: webhook intake, the lock page, health and metrics."""

    host: str = Field("127.0.0.1", json_schema_extra=env("TFBOT_SERVER_HOST"),
                      description="address to listen on; 0.0.0.0 accepts webhooks from other machines")
    port: int = Field(8080, ge=1, le=65535, json_schema_extra=env("TFBOT_SERVER_PORT"), description="TCP port")
    public_url: str = Field("", description="this server's URL as GitHub users reach it, for links from PRs")
    max_body_bytes: int = Field(25 * 1024 * 1024, ge=1024, description="largest webhook body accepted")
    processes: int = Field(0, ge=0, le=64, json_schema_extra=env("TFBOT_SERVER_PROCESSES"),
                           description="web server processes (each with 8 threads); 0: one per core")
    admins: tuple[AdminConfig, ...] = Field((), description="who may sign in and unlock; none: the page is read-only")
    public_logs: bool = Field(False, description="Terraform output on /runs/<id> for everyone, not only admins")
    secret_key: str = Field("", repr=False, json_schema_extra=env("TFBOT_SECRET_KEY", True),
                            description="signs sessions (at least 32 characters); empty: one kept in data_dir")
    unlock_permission: UnlockPermission = Field(
        "maintain", description="the role on a repository, as GitHub reports it at the moment of the unlock, that "
                                "lets a user signed in with GitHub unlock that repository's locks")

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("too short: use at least 32 random characters, e.g. `openssl rand -hex 32`")
        return value

    @model_validator(mode="after")
    def _unique_admins(self) -> "ServerConfig":
        seen: set[str] = set()
        for i, admin in enumerate(self.admins):
            if admin.name.lower() in seen:
                raise at_key(f"admins[{i}].name", f"duplicate admin {admin.name!r}")
            seen.add(admin.name.lower())
        return self


ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Names a run's environment gets from tfbot itself, or that would undo what tfbot asks of Terraform.
_RESERVED_ENV = frozenset({"PATH", "HOME", "TMPDIR", "TF_CLI_CONFIG_FILE", "TF_PLUGIN_CACHE_DIR", "TF_WORKSPACE",
                           "TF_DATA_DIR", "TF_IN_AUTOMATION", "TF_INPUT", "CHECKPOINT_DISABLE", "WORKSPACE", "PLANFILE",
                           "TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE"})
# An IAM role ARN: partition, 12-digit account, role path and name (STS's own rules).
_ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")


def _check_env_name(name: str) -> str | None:
    """Why `name` may not be set in a run's environment, or None."""
    if not ENV_NAME_RE.match(name):
        return f"{name!r} is not an environment variable name (letters, digits, '_', not starting with a digit)"
    upper = name.upper()
    if upper.startswith("TFBOT_"):
        return f"{name}: tfbot's own settings and secrets never reach a run"
    if upper in _RESERVED_ENV or upper.startswith(("TF_CLI_ARGS", "TF_LOG")):
        return f"{name} is set by tfbot (or would change what it asks of Terraform)"
    return None


class SandboxConfig(_Model):
    """How runs are isolated from tfbot (server config only: a repository can never widen it)."""

    mode: Literal["auto", "bubblewrap", "none"] = Field(
        "auto", description="bubblewrap: every Terraform command and run step in a bubblewrap sandbox (startup fails "
        "when it cannot run); auto: bubblewrap when it works here, else none with a warning; none: unsandboxed")
    writable_paths: tuple[Path, ...] = Field((), description="extra directories a run may write, such as a local "
                                             "backend's state directory; relative to the config file")
    readable_paths: tuple[Path, ...] = Field((), description="directories a run may read even inside data_dir or "
                                             "another hidden path; relative to the config file")

    @field_validator("writable_paths", "readable_paths")
    @classmethod
    def _existing_dirs(cls, value: tuple[Path, ...], info: ValidationInfo) -> tuple[Path, ...]:
        paths = tuple(_resolve(Path(p), info) for p in value)
        for path in paths:
            if not path.is_dir():
                raise ValueError(f"no such directory: {path}")
        return paths


class AwsPhaseCredentials(_Model):
    """The AWS role one phase (plan or apply) of a project's runs assumes."""

    aws_role_arn: str = Field(description="IAM role tfbot assumes with STS for the run: arn:aws:iam::ACCOUNT:role/NAME")
    duration_seconds: int = Field(3600, ge=900, le=43200,
                                  description="lifetime of the short-lived keys (the role's maximum session bounds it)")

    @field_validator("aws_role_arn")
    @classmethod
    def _arn(cls, value: str) -> str:
        if not _ROLE_ARN_RE.match(value):
            raise ValueError(f"not an IAM role ARN (arn:aws:iam::123456789012:role/NAME), got {value!r}")
        return value


class CredentialsConfig(_Model):
    """Short-lived cloud credentials per phase: a read-only role for plan, a write role for apply."""

    plan: AwsPhaseCredentials | None = Field(None, description="role assumed for plan runs (and their run steps)")
    apply: AwsPhaseCredentials | None = Field(None, description="role assumed for apply runs (and their run steps)")


class RunEnvConfig(_Model):
    """What a project's runs get besides PATH, a private HOME and tfbot's TF_* settings."""

    env: dict[str, str] = Field(default_factory=dict, description="NAME: value, or NAME: ssm:/path (read at each run)")
    env_passthrough: tuple[str, ...] = Field((), description="names passed on from tfbot's own environment")
    credentials: CredentialsConfig | None = Field(None, description="AWS roles assumed per phase")

    def __hash__(self) -> int:
        # Frozen configs are dictionary keys (compiled project matchers); `env` is a dict, so hash its items.
        return hash((type(self), tuple((k, tuple(sorted(v.items())) if isinstance(v, dict) else v)
                                       for k, v in self.__dict__.items())))

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            problem = _check_env_name(name)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("env_passthrough")
    @classmethod
    def _passthrough_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            problem = _check_env_name(name)
            if problem:
                raise ValueError(problem)
        return value


def _check_binaries(value: dict[str, str]) -> dict[str, str]:
    """`version: path` entries: each key an exact version, each path non-empty (startup runs them: see loading)."""
    from bot.projects.versions import ConstraintError, parse_version

    for version, path in value.items():
        try:
            parse_version(version)
        except ConstraintError as exc:
            raise ValueError(f"{version!r}: the key is the version the binary reports: {exc}") from None
        if not isinstance(path, str) or not path.strip():
            raise ValueError(f"{version!r}: a path, or a name on PATH, is required")
    return {version.strip().removeprefix("v"): path.strip() for version, path in value.items()}


class TerraformConfig(_Model):
    binary: str = Field("terraform", json_schema_extra=env("TFBOT_TERRAFORM_BINARY"),
                        description="a path, or a name on PATH; must be >= 1.4")
    binaries: dict[str, str] = Field(default_factory=dict, description="more Terraform versions projects may pick: "
                                     "version -> a path or a name on PATH (each >= 1.0; startup runs each and checks "
                                     "that it reports its key)")
    timeout: float = Field(3600.0, ge=1, description="seconds; a run over this is killed and reported on the PR")
    mask_env: tuple[str, ...] = Field((), description="environment variables whose values are masked in all output")
    sandbox: SandboxConfig = SandboxConfig()

    _binaries = field_validator("binaries")(_check_binaries)

    @field_validator("binary")
    @classmethod
    def _default_binary(cls, value: str) -> str:
        return value or "terraform"


class TofuConfig(_Model):
    """OpenTofu binaries, for projects with `engine: opentofu`."""

    binaries: dict[str, str] = Field(default_factory=dict, description="version -> a path or a name on PATH of "
                                     "`tofu` (startup runs each and checks that it reports its key)")

    _binaries = field_validator("binaries")(_check_binaries)


class ProjectConfig(RunEnvConfig):
    """One Terraform root module and workspace: one state, one lock."""

    dir: str = Field(description="the project's directory, relative to the repository root")
    workspace: str = Field("default", description="the Terraform workspace")
    # After dir and workspace: its default is made of them.
    name: str = Field("", validate_default=True, description="what `-p NAME` selects; default: dir, or dir:workspace")
    when_modified: tuple[str, ...] = Field(DEFAULT_WHEN_MODIFIED, description="patterns, relative to dir, that plan it")
    autoplan: bool = Field(True, description="plan on every push that changes a when_modified file")
    apply_requirements: tuple[Requirement, ...] = Field((), description="default: the repository's")
    workflow: str = Field("default", description="default: the repository's")
    depends_on: tuple[str, ...] = Field((), description="names of projects whose apply must succeed before this "
                                                        "one's, when one apply holds both")
    execution_order_group: int = Field(0, ge=0, le=1000, description="applies of lower groups run first")
    terraform_version: str = Field("", description="a version (1.9.8) or a constraint (~> 1.9, >= 1.0, < 1.5) the "
                                   "binary must meet, with the root's required_version; empty: the root's alone")
    engine: Literal["terraform", "opentofu"] = Field("terraform", description="opentofu runs `tofu`, from the "
                                                     "server's tofu.binaries")

    _as_list = field_validator("when_modified", "depends_on", mode="before")(_one_or_many)
    _bounded = field_validator("when_modified")(_bounded_globs)
    _known_workflow = field_validator("workflow")(_check_workflow)

    @field_validator("terraform_version")
    @classmethod
    def _constraint(cls, value: str) -> str:
        from bot.projects.versions import ConstraintError, parse_constraint

        if value:
            try:
                parse_constraint(value)
            except ConstraintError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("dir")
    @classmethod
    def _inside_repository(cls, value: str) -> str:
        """A project dir is relative and stays inside the repository: '.' for the root."""
        parts = [p for p in value.replace("\\", "/").split("/") if p not in ("", ".")]
        if value.startswith("/") or ".." in parts:
            raise ValueError(f"must be a path inside the repository, got {value!r}")
        return "/".join(parts) or "."

    @field_validator("workspace")
    @classmethod
    def _workspace(cls, value: str) -> str:
        from bot.models import validate_workspace

        try:
            validate_workspace(value)
        except ValueError:
            raise ValueError("1-90 letters, digits, '-', '_' or '.', not starting with '-', not only dots") from None
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            if "dir" not in info.data or "workspace" not in info.data:
                return value  # their own problems are reported
            workspace = info.data["workspace"]
            value = info.data["dir"] if workspace == "default" else f"{info.data['dir']}:{workspace}"
        if not PROJECT_NAME_RE.match(value) or ".." in value.split("/"):
            raise ValueError("1-100 letters, digits, '.', '_', ':', '/' or '-' (so `-p NAME` can select it)")
        return value


class AutodiscoverConfig(_Model):
    """Finding projects when none are declared: every changed dir holding Terraform files is one."""

    enabled: bool = Field(True, description="plan the changed dirs holding Terraform files; false: plan nothing "
                                            "unless projects are declared")
    ignore_paths: tuple[str, ...] = Field((), description="globs of dirs never taken for projects (`**` crosses "
                                                          "dirs), e.g. examples/**")

    _as_list = field_validator("ignore_paths", mode="before")(_one_or_many)
    _bounded = field_validator("ignore_paths")(_bounded_globs)


def check_unique_projects(projects: tuple[ProjectConfig, ...]) -> None:
    """Project names and (dir, workspace) pairs are unique: one state, one lock, one project. Raises at_key."""
    names: set[str] = set()
    states: set[tuple[str, str]] = set()
    for j, project in enumerate(projects):
        if project.name in names:
            raise at_key(f"projects[{j}].name", f"duplicate project name {project.name!r}")
        if (project.dir, project.workspace) in states:
            raise at_key(f"projects[{j}]", f"another project already uses dir {project.dir!r} with workspace "
                         f"{project.workspace!r}: one state, one lock, one project")
        names.add(project.name)
        states.add((project.dir, project.workspace))
    _check_dependencies(projects)


def _check_dependencies(projects: tuple[ProjectConfig, ...]) -> None:
    """`depends_on` names declared projects, of the same or a lower group, without a cycle. Raises at_key."""
    by_name = {p.name: p for p in projects}
    for j, project in enumerate(projects):
        for name in project.depends_on:
            other = by_name.get(name)
            if other is None:
                raise at_key(f"projects[{j}].depends_on", f"no project is named {name!r}")
            if other is project:
                raise at_key(f"projects[{j}].depends_on", "a project cannot depend on itself")
            if other.execution_order_group > project.execution_order_group:
                raise at_key(f"projects[{j}].depends_on", (
                    f"{name!r} is in a later execution_order_group ({other.execution_order_group} > "
                    f"{project.execution_order_group}): it could never apply first"))
    state: dict[str, int] = {}  # 1: being visited, 2: done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name):] + [name]
            j = next(i for i, p in enumerate(projects) if p.name == cycle[0])
            raise at_key(f"projects[{j}].depends_on", "a cycle: " + " -> ".join(cycle))
        state[name] = 1
        for dependency in by_name[name].depends_on:
            visit(dependency, path + [name])
        state[name] = 2

    for project in projects:
        visit(project.name, [])


class DriftConfig(_Model):
    """Scheduled drift checks of a repository's projects: each is planned on the default branch's head and
    compared with the infrastructure; what differs is reported in one GitHub issue per project."""

    enabled: bool = Field(False, description="check this repository's projects for drift on `schedule`")
    schedule: str = Field("0 * * * *", description="when, as a cron expression in UTC (minute hour day month "
                                                   "weekday), read by croniter")
    projects: tuple[str, ...] = Field(("*",), description="project names or globs (fnmatch) to check; default all")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        if len(value.split()) != 5:
            raise ValueError(f"needs five fields (minute hour day month weekday, such as \"0 * * * *\"; no "
                             f"seconds field and no @hourly-style names), got {value!r}")
        try:
            croniter(value)
        except (ValueError, KeyError) as exc:  # croniter's errors are ValueErrors; its own text names the field
            raise ValueError(f"not a cron expression croniter accepts: {exc}") from None
        return value


class RepoConfig(RunEnvConfig):
    """Settings of the repositories one `name` pattern matches."""

    name: str = Field(description="a repository such as acme/infra, or a pattern such as acme/*")
    projects: tuple[ProjectConfig, ...] = Field((), description="default: every changed dir holding .tf files")
    allow_fork_prs: bool = Field(False, description="plan PRs from forks (only commits a writer approved with `plan`)")
    plan_drafts: bool = Field(False, description="plan draft PRs on push")
    apply_requirements: tuple[Requirement, ...] = Field((), description="what a PR needs before `apply`")
    workflow: str = Field("default", description="workflow of the repository's projects")
    apply_branches: tuple[str, ...] = Field((), description="branches besides the default branch whose merges apply")
    allow_draft_apply: bool = Field(False, description="allow `apply` on a draft PR")
    autodiscover: AutodiscoverConfig = Field(default_factory=AutodiscoverConfig,
                                             description="finding projects when none are declared")
    parallel_plan: bool = Field(True, description="plan the projects of one PR at once (up to the workers); false: "
                                                  "one at a time, in the apply order")
    parallel_apply: bool = Field(True, description="apply the projects of one apply at once where their order "
                                                   "allows; false: one at a time, in order, each whatever the "
                                                   "one before it did")
    allowed_overrides: tuple[Override, ...] = Field(
        DEFAULT_OVERRIDES, description="what the repository's own tfbot.yaml may set; [] ignores nothing but "
                                       "refuses every key")
    allowed_workflows: tuple[str, ...] = Field((), description="workflows tfbot.yaml may name besides `workflow`")
    read_repo_config: bool = Field(True, description="read the repository's tfbot.yaml; false: it is ignored")
    extra_args: tuple[PlanOption, ...] = Field(
        DEFAULT_EXTRA_ARGS, description="Terraform plan options a `plan` comment may add after `--`: an option's "
                                        "name (any value) or one exact argument such as -refresh=false; [] turns "
                                        "extra arguments off")
    change_records: bool = Field(True, description="change records read its projects' state to name the project a "
                                                   "changed resource belongs to, and queue its drift check; false: "
                                                   "never")
    drift: DriftConfig = Field(default_factory=DriftConfig, description="scheduled drift checks and their issues "
                                                                        "(off unless enabled)")

    _known_workflow = field_validator("workflow")(_check_workflow)

    @field_validator("allowed_workflows")
    @classmethod
    def _known_workflows(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        for name in value:
            _check_workflow(name, info)
        return value

    @field_validator("name")
    @classmethod
    def _owner_and_repo(cls, value: str) -> str:
        if not value:
            raise ValueError("missing: a repository such as acme/infra, or a pattern such as acme/*")
        if "/" not in value:
            raise ValueError(f"must be OWNER/REPO or a pattern such as acme/*, got {value!r}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _inherit(cls, data: Any, info: ValidationInfo) -> Any:
        """Projects inherit the repository's apply_requirements and workflow unless they set their own."""
        if not isinstance(data, dict) or not isinstance(data.get("projects"), (list, tuple)):
            return data
        inherited = {k: data[k] for k in ("apply_requirements", "workflow") if k in data}
        requirements = inherited.get("apply_requirements")
        if not isinstance(requirements, (list, tuple)) or not set(requirements) <= set(APPLY_REQUIREMENTS):
            inherited.pop("apply_requirements", None)  # reported once, at the repository
        workflow, known = inherited.get("workflow"), _workflows(info)
        if not isinstance(workflow, str) or (known is not None and workflow.strip() not in known):
            inherited.pop("workflow", None)  # reported once, at the repository
        projects = [p.model_dump(exclude_unset=True) if isinstance(p, ProjectConfig) else p for p in data["projects"]]
        return {**data, "projects": [{**inherited, **p} if isinstance(p, dict) else p for p in projects]}

    @model_validator(mode="after")
    def _unique_projects(self) -> "RepoConfig":
        check_unique_projects(self.projects)
        return self

    def applies_to(self, base_ref: str, default_branch: str) -> bool:
        """Whether merges into `base_ref` are applied (PRs into it take locks): the default branch, or listed."""
        return base_ref == default_branch or base_ref in self.apply_branches

    def run_settings(self, dir: str, workspace: str) -> RunEnvConfig:
        """What the runs of project (dir, workspace) get (pure): the repository's `env` with the project's on top,
        both passthrough lists, and per phase the project's role, else the repository's."""
        project = next((p for p in self.projects if (p.dir, p.workspace) == (dir, workspace)), None)
        if project is None:
            return RunEnvConfig(env=dict(self.env), env_passthrough=self.env_passthrough, credentials=self.credentials)
        own, default = project.credentials or CredentialsConfig(), self.credentials or CredentialsConfig()
        credentials = CredentialsConfig(plan=own.plan or default.plan, apply=own.apply or default.apply)
        return RunEnvConfig(env={**self.env, **project.env},
                            env_passthrough=tuple(dict.fromkeys((*self.env_passthrough, *project.env_passthrough))),
                            credentials=credentials if credentials.plan or credentials.apply else None)

    def matches(self, full_name: str) -> bool:
        """True when this entry's pattern (e.g. `acme/*`) covers the repository."""
        return fnmatch.fnmatchcase(full_name.lower(), self.name.lower())


NotifyEvent = Literal["apply_succeeded", "apply_failed", "lock_waiting_long", "drift_found", "drift_resolved"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = ("apply_succeeded", "apply_failed", "lock_waiting_long", "drift_found",
                                          "drift_resolved")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def _url_problem(url: str) -> str | None:
    """Why `url` cannot receive notifications, or None; never quotes the URL (it is a secret)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https:// URL (or ssm:/path holding one)"
    if parts.username or parts.password:
        return "must not carry a user or password: the receiver is authenticated by its URL or the signature"
    if parts.scheme == "http" and host not in _LOOPBACK_HOSTS and not host.startswith("127."):
        return "must be https://: http:// is allowed only to this host (localhost, 127.0.0.1, ::1), for testing"
    return None


class NotificationConfig(_Model):
    """One receiver of tfbot's notifications: a Slack incoming webhook, or any HTTP endpoint taking signed JSON."""

    kind: Literal["slack", "webhook"] = Field(description="slack: Slack's incoming-webhook message format; webhook: "
                                                          "tfbot's JSON, signed with `secret`")
    url: str = Field(repr=False, json_schema_extra=SECRET,
                     description="where notifications are POSTed: https:// (http:// only to this host), or ssm:/path")
    secret: str = Field("", repr=False, json_schema_extra=SECRET,
                        description="webhook: the HMAC-SHA256 key of X-Tfbot-Signature-256 (required, at least 16 "
                                    "characters), or ssm:/path; slack: not allowed")
    events: tuple[NotifyEvent, ...] = Field(NOTIFY_EVENTS, description="which events it gets; default: all")
    repos: tuple[str, ...] = Field(("*",), description="patterns of repositories whose events it gets, such as "
                                                       "acme/* (shell-style, case-insensitive); default: all")
    lock_waiting_after: float = Field(3600.0, ge=1, description="lock_waiting_long: how long a PR waits in a lock's "
                                      "line before this receiver hears of it, such as 30m or 2h")

    _as_list = field_validator("events", "repos", mode="before")(_one_or_many)

    @field_validator("lock_waiting_after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("url")
    @classmethod
    def _receiver_url(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            raise ValueError("missing: the receiver's https:// URL, or ssm:/path holding it")
        if value.startswith("ssm:") and not _needs_app(info):
            return value  # a command that only reads Redis sends nothing, so it does not read SSM
        problem = _url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("events")
    @classmethod
    def _some_events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("an empty list sends nothing: list some of " + ", ".join(NOTIFY_EVENTS) +
                             ", or remove the entry")
        return tuple(dict.fromkeys(value))

    @field_validator("repos")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not p for p in value):
            raise ValueError("must not be empty: patterns such as acme/infra, acme/* or * (leave it out for every "
                             "repository)")
        return value

    @model_validator(mode="after")
    def _secret_for_kind(self, info: ValidationInfo) -> "NotificationConfig":
        if self.secret.startswith("ssm:") and not _needs_app(info):
            return self  # as for url
        if self.kind == "webhook" and not self.secret:
            raise at_key("secret", "required for a webhook: receivers check the X-Tfbot-Signature-256 header with it")
        if self.kind == "webhook" and len(self.secret) < 16:
            raise at_key("secret", "too short: use at least 16 random characters, e.g. `openssl rand -hex 32`")
        if self.kind == "slack" and self.secret:
            raise at_key("secret", "not used by slack: a Slack incoming webhook is authenticated by its URL alone")
        return self

    def wants_repo(self, full_name: str) -> bool:
        """True when one of `repos` matches the repository (e.g. `acme/*` covers acme/infra)."""
        return any(fnmatch.fnmatchcase(full_name.lower(), p.lower()) for p in self.repos)


class S3Config(_Model):
    bucket: str = Field("", description="S3 bucket for plan files; required when storage.backend is s3")
    prefix: str = Field("tfbot", description="plan files are stored under <prefix>/plans/ in the bucket")
    endpoint_url: str = Field("", description="S3 endpoint, for S3-compatible stores; empty: AWS's")
    region: str = Field("us-east-1", description="region of the bucket")

    @field_validator("prefix")
    @classmethod
    def _strip_slashes(cls, value: str) -> str:
        return value.strip("/")


class StorageConfig(_Model):
    backend: Literal["local", "s3"] = Field("local", description="where saved plan files live between plan and apply")
    s3: S3Config = S3Config()

    @model_validator(mode="after")
    def _bucket_for_s3(self) -> "StorageConfig":
        if self.backend == "s3" and not self.s3.bucket:
            raise at_key("s3.bucket", "required when storage.backend is s3")
        return self


class AwsConfig(_Model):
    region: str = Field("", description="AWS region for reading ssm: secrets; empty: boto3's default")
    endpoint_url: str = Field("", description="SSM endpoint for reading ssm: secrets; empty: AWS's")
    sts_endpoint_url: str = Field("", description="STS endpoint for assuming the roles of `credentials`; empty: AWS's")


class CommentsConfig(_Model):
    hide_previous: bool = Field(True, description="hide a PR's earlier plan comments as outdated (GitHub's Hide, "
                                                  "folded); false: leave them open under an Outdated banner")


class LocksConfig(_Model):
    expire_after: Duration = Field(None, json_schema_extra=env("TFBOT_LOCKS_EXPIRE_AFTER"),
                                   description="release a lock whose PR only planned and then had no push, comment "
                                               "or run for this long (e.g. 7d); off by default. Locks of PRs that "
                                               "applied, are applying or failed an apply never expire")


_REPO_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")
_AWS_ACCOUNT_RE = re.compile(r"^(\d{12}|[\d*?\[\]]{1,12})$")


class ChangeIgnoreConfig(_Model):
    """CloudTrail events tfbot records nothing for."""

    accounts: tuple[str, ...] = Field((), description="AWS accounts (12 digits, or a glob such as 1234*) whose "
                                                      "changes are not recorded")
    principals: tuple[str, ...] = Field((), description="globs matched against the caller's ARN, its assumed role's "
                                                        "ARN and the AWS service it was invoked by, e.g. "
                                                        "arn:aws:iam::*:role/tfbot-apply")

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for account in value:
            if not _AWS_ACCOUNT_RE.match(account):
                raise ValueError(f"not an AWS account id (12 digits) or a glob of one: {account!r}")
        return value


class ChangeRecordsConfig(_Model):
    """Change records: tfbot reads CloudTrail management events from an SQS queue (fed by an EventBridge rule) and
    opens one GitHub issue per change. Absent: off."""

    sqs_queue_url: str = Field(description="the SQS queue the EventBridge rule sends CloudTrail events to "
                                           "(https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)")
    region: str = Field("", description="the queue's region; empty: boto3's default (AWS_REGION)")
    endpoint_url: str = Field("", description="SQS endpoint, for SQS-compatible services and tests; empty: AWS's")
    dead_letter_queue_url: str = Field("", description="where tfbot sets aside messages it cannot read or record; "
                                                       "empty: the dead-letter queue of the queue's redrive policy")
    max_receive_count: int = Field(5, ge=1, le=1000, description="a message tfbot failed to record this many times "
                                                                 "(GitHub down) is moved to the dead-letter queue")
    visibility_timeout: int = Field(120, ge=10, le=43200, description="seconds a received message stays hidden from "
                                                                      "other receivers before SQS delivers it again")
    wait_seconds: int = Field(20, ge=1, le=20, description="long polling: seconds one receive waits for a message")
    repo: str = Field(description="OWNER/NAME of the repository the issues are opened in; the App must be "
                                  "installed on it")
    label: str = Field("change-record", description="the label of every change-record issue")
    event_sources: tuple[str, ...] = Field((), description="only events of these services (globs of eventSource, "
                                                           "e.g. s3.amazonaws.com); empty: every service")
    event_names: tuple[str, ...] = Field((), description="only these calls (globs of eventName, e.g. Delete*); "
                                                         "empty: every call")
    ignore: ChangeIgnoreConfig = Field(default_factory=ChangeIgnoreConfig, description="events never recorded")
    include_read_only: bool = Field(False, description="record read-only calls (Get*, List*, Describe*) too")
    include_failed: bool = Field(False, description="record calls AWS refused (with an errorCode) too")
    group_window: int = Field(600, ge=0, le=86400, description="seconds within which calls of one principal on one "
                                                               "resource of one service make one issue")
    state_refresh: int = Field(3600, ge=60, description="seconds between two readings of the projects' Terraform "
                                                       "state, which names the project a changed resource belongs to")
    drift_checks: bool = Field(True, description="queue the drift check of a project whose resource was changed")

    @field_validator("sqs_queue_url", "dead_letter_queue_url", "endpoint_url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        if info.field_name == "sqs_queue_url" and not value:
            raise ValueError("missing: the URL of the SQS queue the EventBridge rule sends to")
        if value and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        if not _REPO_NAME_RE.match(value):
            raise ValueError(f"must be OWNER/NAME of one repository (no pattern), got {value!r}")
        return value

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        if not value or len(value) > 50 or any(ord(c) < 32 for c in value):
            raise ValueError("1-50 printable characters (GitHub's limit for a label name)")
        return value

    _as_list = field_validator("event_sources", "event_names", mode="before")(_one_or_many)


class Config(_Model):
    """tfbot's server configuration (config.yaml)."""

    github: GitHubConfig = Field(default_factory=dict, validate_default=True)
    data_dir: Path = Field(Path("data"), validate_default=True, json_schema_extra=env("TFBOT_DATA_DIR"),
                           description="checkouts, plan files, Terraform's plugin cache and the embedded Redis; "
                           "relative to the config file")
    server: ServerConfig = ServerConfig()
    redis_url: str = Field("", json_schema_extra=env("TFBOT_REDIS_URL", True),
                           description="redis://, rediss:// (TLS) or unix://, with a password; empty: an embedded "
                           "Redis under data_dir")
    workers: int = Field(2, ge=1, le=64, json_schema_extra=env("TFBOT_WORKERS"),
                         description="plan/apply jobs run at once on this host")
    shutdown_grace: float = Field(600.0, ge=0, json_schema_extra=env("TFBOT_SHUTDOWN_GRACE"),
                                  description="seconds a stopping `tfbot serve` waits for running Terraform runs "
                                  "before it asks them to stop (keep the orchestrator's stop timeout above "
                                  "shutdown_grace + terraform_stop_grace)")
    # Terraform asked to stop finishes the resource operations it started and writes its state; killed, it loses
    # them and leaves its state lock held. Provider operations can take minutes.
    terraform_stop_grace: float = Field(300.0, ge=0, json_schema_extra=env("TFBOT_TERRAFORM_STOP_GRACE"),
                                        description="seconds a stopping `tfbot serve` gives a Terraform run it asked "
                                        "to stop (after shutdown_grace) to finish its in-flight operations and save "
                                        "its state, before it kills the run")
    terraform: TerraformConfig = TerraformConfig()
    locks: LocksConfig = LocksConfig()
    comments: CommentsConfig = CommentsConfig()
    tofu: TofuConfig = Field(default_factory=TofuConfig, description="OpenTofu, for projects with engine: opentofu")
    repos: tuple[RepoConfig, ...] = Field((), description="which repositories tfbot acts on; the first match wins")
    storage: StorageConfig = StorageConfig()
    aws: AwsConfig = AwsConfig()
    change_records: ChangeRecordsConfig | None = Field(None, description="issues for changes made outside Terraform, "
                                                       "from CloudTrail through SQS; absent: off")
    workflows_dir: Path | None = Field(None, description="extra workflows (a default.yaml here replaces the built-in "
                                       "one); relative to the config file")
    max_projects_per_pr: int = Field(100, ge=1, description="a PR changing more projects is not planned")
    notifications: tuple[NotificationConfig, ...] = Field(
        (), description="receivers of apply, lock-wait and drift events (Slack, or signed JSON webhooks)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", json_schema_extra=env("TFBOT_LOG_LEVEL"))
    log_format: Literal["text", "json"] = Field("text", json_schema_extra=env("TFBOT_LOG_FORMAT"),
                                                description="json: one JSON object a line, for log shippers")
    _source: Path | None = PrivateAttr(None)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("data_dir", "workflows_dir")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None or str(value) in ("", "."):
            return None if info.field_name == "workflows_dir" else _resolve(Path("."), info)
        return _resolve(value, info)

    @field_validator("workflows_dir")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"no such directory: {value}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix:// (leave it empty for the embedded Redis)")
        return value

    @property
    def source(self) -> Path | None:
        """The config file this was read from (a child process is started with it)."""
        return self._source

    def repo_config(self, full_name: str) -> RepoConfig | None:
        """The first `repos` entry whose pattern matches, or None: events from other repositories are ignored."""
        return next((r for r in self.repos if r.matches(full_name)), None)

    def secrets(self) -> list[str]:
        """Values that must never be printed: used by log and output masking."""
        from urllib.parse import urlsplit

        redis_password = urlsplit(self.redis_url).password if self.redis_url else None
        receivers = [value for n in self.notifications for value in (n.url, n.secret)]
        return [s for s in (self.github.private_key, self.github.webhook_secret, self.server.secret_key,
                            redis_password, self.github.client_secret, *receivers) if s]


def _needs_app(info: ValidationInfo) -> bool:
    """False for commands that only read Redis: they run without the App's key and webhook secret."""
    return bool((info.context or {}).get("github_app", True))


def _resolve(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir", Path.cwd())
    path = path.expanduser()
    return path if path.is_absolute() else (Path(base) / path).resolve()


def is_rsa_private_key(pem: str) -> bool:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        return isinstance(load_pem_private_key(pem.encode(), password=None), rsa.RSAPrivateKey)
    except (ValueError, TypeError):
        return False
