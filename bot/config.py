"""Load and validate tfbot's configuration: YAML, then environment overrides, then secret references.

Every problem is collected with the dotted name of its key, so a broken config is reported whole in one
go (`ConfigError.problems`) instead of one failure per restart.
"""
from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

# Environment variables that override a config key. Secrets belong here (or in SSM), not in the YAML file.
ENV_OVERRIDES: dict[str, str] = {
    "TFBOT_GITHUB_API_URL": "github.api_url",
    "TFBOT_GITHUB_APP_ID": "github.app_id",
    "TFBOT_GITHUB_APP_SLUG": "github.app_slug",
    "TFBOT_GITHUB_PRIVATE_KEY": "github.private_key",
    "TFBOT_GITHUB_PRIVATE_KEY_PATH": "github.private_key_path",
    "TFBOT_WEBHOOK_SECRET": "github.webhook_secret",
    "TFBOT_REDIS_URL": "redis_url",
    "TFBOT_DATA_DIR": "data_dir",
    "TFBOT_SERVER_HOST": "server.host",
    "TFBOT_SERVER_PORT": "server.port",
    "TFBOT_WORKERS": "workers",
    "TFBOT_TERRAFORM_BINARY": "terraform.binary",
    "TFBOT_LOG_LEVEL": "log_level",
    "TFBOT_SECRET_KEY": "server.secret_key",
}

SECRET_KEYS = ("github.private_key", "github.webhook_secret", "server.secret_key")
DEFAULT_WHEN_MODIFIED = ("*.tf", "*.tfvars")
APPLY_REQUIREMENTS = ("approved", "mergeable")
PROJECT_NAME_RE = re.compile(r"^[A-Za-z0-9_.:/-]{1,100}$")


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds one 'dotted.key: reason' line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True)
class GitHubConfig:
    api_url: str
    app_id: int
    private_key: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    app_slug: str = "tfbot"
    retries: int = 3
    timeout: float = 15.0
    # PyGithub waits 1 s before every write by default; GitHub asks for spacing, not a full second.
    write_interval: float = 0.25


@dataclass(frozen=True)
class AdminConfig:
    """One person who may sign in to the lock page and unlock; the hash comes from `tfbot hash-password`."""

    name: str
    password_hash: str = field(repr=False)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    max_body_bytes: int = 25 * 1024 * 1024
    admins: tuple[AdminConfig, ...] = ()  # none: the lock page is read-only
    public_logs: bool = False  # Terraform output on /runs/<id> for everyone, not only signed-in admins
    secret_key: str = field(default="", repr=False)  # signs sessions; empty: one kept in data_dir (bot.web.security)


@dataclass(frozen=True)
class TerraformConfig:
    binary: str = "terraform"
    timeout: float = 3600.0
    mask_env: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProjectConfig:
    name: str
    dir: str
    workspace: str = "default"
    when_modified: tuple[str, ...] = DEFAULT_WHEN_MODIFIED
    autoplan: bool = True
    apply_requirements: tuple[str, ...] = ()
    workflow: str = "default"


@dataclass(frozen=True)
class RepoConfig:
    name: str
    projects: tuple[ProjectConfig, ...] = ()
    allow_fork_prs: bool = False
    plan_drafts: bool = False
    apply_requirements: tuple[str, ...] = ()
    workflow: str = "default"

    def matches(self, full_name: str) -> bool:
        """True when this entry's pattern (e.g. `acme/*`) covers the repository."""
        return fnmatch.fnmatchcase(full_name.lower(), self.name.lower())


@dataclass(frozen=True)
class S3Config:
    bucket: str = ""
    prefix: str = "tfbot"
    endpoint_url: str = ""
    region: str = "us-east-1"


@dataclass(frozen=True)
class StorageConfig:
    backend: str = "local"
    s3: S3Config = S3Config()


@dataclass(frozen=True)
class AwsConfig:
    region: str = ""
    endpoint_url: str = ""


@dataclass(frozen=True)
class Config:
    github: GitHubConfig
    data_dir: Path
    server: ServerConfig = ServerConfig()
    redis_url: str = ""
    workers: int = 2
    terraform: TerraformConfig = TerraformConfig()
    repos: tuple[RepoConfig, ...] = ()
    storage: StorageConfig = StorageConfig()
    aws: AwsConfig = AwsConfig()
    workflows_dir: Path | None = None  # extra workflows; the built-in ones ship in the package
    max_projects_per_pr: int = 100
    log_level: str = "INFO"
    source: Path | None = None

    def repo_config(self, full_name: str) -> RepoConfig | None:
        """The first `repos` entry whose pattern matches, or None: events from other repositories are ignored."""
        return next((r for r in self.repos if r.matches(full_name)), None)

    def secrets(self) -> list[str]:
        """Values that must never be printed: used by log and output masking."""
        return [s for s in (self.github.private_key, self.github.webhook_secret, self.server.secret_key) if s]


SecretResolver = Callable[[str, "AwsConfig"], str]


def load_config(
    path: str | Path,
    environ: Mapping[str, str] | None = None,
    resolve_secret: SecretResolver | None = None,
) -> Config:
    """Read the YAML file at `path`, apply environment overrides and `ssm:` references, and validate."""
    environ = os.environ if environ is None else environ
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: no such config file (start from config.yaml in the tfbot repository)"])
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read: {exc.strerror}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}"])
    for env_name, dotted in ENV_OVERRIDES.items():
        if environ.get(env_name):
            _set_dotted(raw, dotted, environ[env_name])
    return parse_config(raw, base_dir=path.parent.resolve(), resolve_secret=resolve_secret, source=path)


def parse_config(
    raw: dict[str, Any],
    base_dir: Path,
    resolve_secret: SecretResolver | None = None,
    source: Path | None = None,
) -> Config:
    """Validate a raw mapping into a Config; raise ConfigError listing every problem."""
    v = _Validator(raw)
    aws = AwsConfig(
        region=v.string("aws.region", default=""),
        endpoint_url=v.string("aws.endpoint_url", default=""),
    )
    resolve = resolve_secret or _default_secret_resolver
    github = _parse_github(v, base_dir, aws, resolve)
    data_dir = Path(v.string("data_dir", default="./data")).expanduser()
    if not data_dir.is_absolute():
        data_dir = (base_dir / data_dir).resolve()
    workflows_dir: Path | None = None
    if v.string("workflows_dir", default=""):
        workflows_dir = Path(v.string("workflows_dir", default="")).expanduser()
        if not workflows_dir.is_absolute():
            workflows_dir = (base_dir / workflows_dir).resolve()
        if not workflows_dir.is_dir():
            v.problem("workflows_dir", f"no such directory: {workflows_dir}")
    server = ServerConfig(
        host=v.string("server.host", default="127.0.0.1"),
        port=v.integer("server.port", default=8080, low=1, high=65535),
        public_url=v.string("server.public_url", default="").rstrip("/"),
        max_body_bytes=v.integer("server.max_body_bytes", default=25 * 1024 * 1024, low=1024),
        admins=_parse_admins(v),
        public_logs=v.boolean("server.public_logs", default=False),
        secret_key=v.secret("server.secret_key", aws, resolve),
    )
    if server.secret_key and len(server.secret_key) < 32:
        v.problem("server.secret_key", "too short: use at least 32 random characters, e.g. `openssl rand -hex 32`")
    terraform = TerraformConfig(
        binary=v.string("terraform.binary", default="terraform") or "terraform",
        timeout=float(v.integer("terraform.timeout", default=3600, low=1)),
        mask_env=tuple(v.string_list("terraform.mask_env", default=())),
    )
    redis_url = v.string("redis_url", default="")
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        v.problem("redis_url", "must start with redis://, rediss:// or unix:// (leave it empty for the embedded Redis)")
    storage = _parse_storage(v)
    repos = tuple(_parse_repo(v, i) for i in range(len(v.list("repos"))))
    log_level = v.string("log_level", default="INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        v.problem("log_level", "must be one of DEBUG, INFO, WARNING, ERROR")
    config = Config(
        github=github,
        data_dir=data_dir,
        server=server,
        redis_url=redis_url,
        workers=v.integer("workers", default=2, low=1, high=64),
        terraform=terraform,
        repos=repos,
        storage=storage,
        aws=aws,
        workflows_dir=workflows_dir,
        max_projects_per_pr=v.integer("max_projects_per_pr", default=100, low=1),
        log_level=log_level,
        source=source,
    )
    v.reject_unknown()
    if v.problems:
        raise ConfigError(v.problems)
    return config


def _parse_github(v: "_Validator", base_dir: Path, aws: AwsConfig, resolve: SecretResolver) -> GitHubConfig:
    api_url = v.string("github.api_url", default="https://api.github.com").rstrip("/")
    if not re.match(r"^https?://[^/\s]+", api_url):
        v.problem("github.api_url", "must be an http(s) URL such as https://api.github.com or https://HOST/api/v3")
    app_id = v.integer("github.app_id", default=None, low=1)
    key = v.secret("github.private_key", aws, resolve)
    key_path = v.string("github.private_key_path", default="")
    if key and key_path:
        v.problem("github.private_key", "set either github.private_key or github.private_key_path, not both")
    elif key_path:
        p = Path(key_path).expanduser()
        p = p if p.is_absolute() else base_dir / p
        try:
            key = p.read_text()
        except OSError as exc:
            v.problem("github.private_key_path", f"cannot read {p}: {exc.strerror}")
    elif not key:
        v.problem("github.private_key", "missing: set github.private_key_path, or TFBOT_GITHUB_PRIVATE_KEY")
    if key and not _is_rsa_private_key(key):
        # Never echo the value: it is a secret even when malformed.
        v.problem("github.private_key", "not a PEM-encoded RSA private key (download one from the GitHub App settings)")
    secret = v.secret("github.webhook_secret", aws, resolve)
    if not secret:
        v.problem("github.webhook_secret", "missing: set it to the GitHub App's webhook secret (or TFBOT_WEBHOOK_SECRET)")
    if app_id is None and "github.app_id" not in v.reported:
        v.problem("github.app_id", "missing: the numeric App ID from the GitHub App settings (or TFBOT_GITHUB_APP_ID)")
    return GitHubConfig(
        api_url=api_url,
        app_id=app_id or 0,
        private_key=key or "",
        webhook_secret=secret or "",
        app_slug=v.string("github.app_slug", default="tfbot"),
        retries=v.integer("github.retries", default=3, low=0, high=10),
        timeout=float(v.integer("github.timeout", default=15, low=1)),
        write_interval=v.number("github.write_interval", default=0.25, low=0.0),
    )


ADMIN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Hash formats werkzeug.security.check_password_hash understands: "method$salt$hash".
_PASSWORD_HASH_RE = re.compile(r"^(scrypt|pbkdf2)(:[A-Za-z0-9:]*)?\$[^$]+\$[0-9a-f]+$")


def _parse_admins(v: "_Validator") -> tuple[AdminConfig, ...]:
    admins: list[AdminConfig] = []
    for i, entry in enumerate(v.list("server.admins")):
        key = f"server.admins[{i}]"
        if not isinstance(entry, dict):
            v.problem(key, "must be a mapping with name and password_hash")
            continue
        for k in entry:
            if k not in ("name", "password_hash"):
                hint = ": store only a hash, made by `tfbot hash-password`" if k == "password" else ""
                v.problem(f"{key}.{k}", "unknown key" + hint)
        name = v.string(f"{key}.name", default="")
        password_hash = v.string(f"{key}.password_hash", default="")
        if not ADMIN_NAME_RE.match(name):
            v.problem(f"{key}.name", "1-64 letters, digits, '.', '_' or '-' (their GitHub login, so PR comments name them)")
        elif any(a.name.lower() == name.lower() for a in admins):
            v.problem(f"{key}.name", f"duplicate admin {name!r}")
        if not _PASSWORD_HASH_RE.match(password_hash):
            # Never echo the value: it may be a password pasted by mistake.
            v.problem(f"{key}.password_hash", "not a password hash: make one with `tfbot hash-password`")
        admins.append(AdminConfig(name=name, password_hash=password_hash))
    return tuple(admins)


def _parse_storage(v: "_Validator") -> StorageConfig:
    backend = v.string("storage.backend", default="local")
    if backend not in ("local", "s3"):
        v.problem("storage.backend", f"must be 'local' or 's3', got {backend!r}")
    s3 = S3Config(
        bucket=v.string("storage.s3.bucket", default=""),
        prefix=v.string("storage.s3.prefix", default="tfbot").strip("/"),
        endpoint_url=v.string("storage.s3.endpoint_url", default=""),
        region=v.string("storage.s3.region", default="us-east-1"),
    )
    if backend == "s3" and not s3.bucket:
        v.problem("storage.s3.bucket", "required when storage.backend is s3")
    return StorageConfig(backend=backend, s3=s3)


def _parse_repo(v: "_Validator", i: int) -> RepoConfig:
    key = f"repos[{i}]"
    name = v.string(f"{key}.name", default="")
    if not name:
        v.problem(f"{key}.name", "missing: a repository such as acme/infra, or a pattern such as acme/*")
    elif "/" not in name:
        v.problem(f"{key}.name", f"must be OWNER/REPO or a pattern such as acme/*, got {name!r}")
    repo_requirements = _requirements(v, f"{key}.apply_requirements")
    projects = []
    seen: set[str] = set()
    states: set[tuple[str, str]] = set()
    for j in range(len(v.list(f"{key}.projects"))):
        pkey = f"{key}.projects[{j}]"
        pdir = v.string(f"{pkey}.dir", default="")
        if not pdir:
            v.problem(f"{pkey}.dir", "missing: the project's directory, relative to the repository root")
        pdir = _normalise_dir(v, f"{pkey}.dir", pdir)
        workspace = v.string(f"{pkey}.workspace", default="default")
        if not _valid_workspace(workspace):
            v.problem(f"{pkey}.workspace", "1-90 letters, digits, '-', '_' or '.', not starting with '-', not only dots")
        pname = v.string(f"{pkey}.name", default="") or (pdir if workspace == "default" else f"{pdir}:{workspace}")
        if not PROJECT_NAME_RE.match(pname) or ".." in pname.split("/"):
            v.problem(f"{pkey}.name", "1-100 letters, digits, '.', '_', ':', '/' or '-' (so `-p NAME` can select it)")
        if pname in seen:
            v.problem(f"{pkey}.name", f"duplicate project name {pname!r}")
        if (pdir, workspace) in states:
            v.problem(f"{pkey}", f"another project already uses dir {pdir!r} with workspace {workspace!r}: "
                      "one state, one lock, one project")
        seen.add(pname)
        states.add((pdir, workspace))
        projects.append(
            ProjectConfig(
                name=pname,
                dir=pdir,
                workspace=workspace,
                when_modified=tuple(v.string_list(f"{pkey}.when_modified", default=DEFAULT_WHEN_MODIFIED)),
                autoplan=v.boolean(f"{pkey}.autoplan", default=True),
                apply_requirements=_requirements(v, f"{pkey}.apply_requirements", repo_requirements),
                workflow=v.string(f"{pkey}.workflow", default=v.string(f"{key}.workflow", default="default")),
            )
        )
    return RepoConfig(
        name=name,
        projects=tuple(projects),
        allow_fork_prs=v.boolean(f"{key}.allow_fork_prs", default=False),
        plan_drafts=v.boolean(f"{key}.plan_drafts", default=False),
        apply_requirements=repo_requirements,
        workflow=v.string(f"{key}.workflow", default="default"),
    )


def _requirements(v: "_Validator", key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    values = tuple(v.string_list(key, default=default))
    for value in values:
        if value not in APPLY_REQUIREMENTS:
            v.problem(key, f"unknown requirement {value!r}; allowed: {', '.join(APPLY_REQUIREMENTS)}")
    return values


def _normalise_dir(v: "_Validator", key: str, value: str) -> str:
    """A project dir is relative and stays inside the repository: '.' for the root."""
    parts = [p for p in value.replace("\\", "/").split("/") if p not in ("", ".")]
    if value.startswith("/") or ".." in parts:
        v.problem(key, f"must be a path inside the repository, got {value!r}")
        return "."
    return "/".join(parts) or "."


def _valid_workspace(name: str) -> bool:
    from bot.terraform import validate_workspace

    try:
        validate_workspace(name)
    except ValueError:
        return False
    return True


def _is_rsa_private_key(pem: str) -> bool:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        return isinstance(load_pem_private_key(pem.encode(), password=None), rsa.RSAPrivateKey)
    except (ValueError, TypeError):
        return False


def _default_secret_resolver(reference: str, aws: AwsConfig) -> str:
    from bot.secrets import resolve_secret

    return resolve_secret(reference, aws)


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    *parents, last = dotted.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


_KNOWN_KEYS = {
    "github": {"api_url", "app_id", "app_slug", "private_key", "private_key_path", "webhook_secret", "retries", "timeout",
               "write_interval"},
    "server": {"host", "port", "public_url", "max_body_bytes", "admins", "public_logs", "secret_key"},
    "terraform": {"binary", "timeout", "mask_env"},
    "storage": {"backend", "s3"},
    "aws": {"region", "endpoint_url"},
    "": {
        "github", "server", "data_dir", "redis_url", "workers", "terraform", "repos", "storage", "aws",
        "workflows_dir", "max_projects_per_pr", "log_level",
    },
}
_REPO_KEYS = {"name", "projects", "allow_fork_prs", "plan_drafts", "apply_requirements", "workflow"}
_PROJECT_KEYS = {"name", "dir", "workspace", "when_modified", "autoplan", "apply_requirements", "workflow"}


class _Validator:
    """Typed reads of dotted keys out of the raw mapping, collecting problems instead of raising."""

    def __init__(self, raw: dict[str, Any]):
        self.raw = raw
        self.problems: list[str] = []
        self.reported: set[str] = set()

    def problem(self, key: str, reason: str) -> None:
        self.reported.add(key)
        self.problems.append(f"{key}: {reason}")

    def get(self, key: str) -> Any:
        node: Any = self.raw
        for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
            if part.startswith("["):
                idx = int(part[1:-1])
                node = node[idx] if isinstance(node, list) and idx < len(node) else None
            else:
                node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                return None
        return node

    def string(self, key: str, default: Any) -> Any:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            self.problem(key, f"must be a string, got {type(value).__name__}")
            return default
        return value.strip()

    def secret(self, key: str, aws: AwsConfig, resolve: SecretResolver) -> str:
        value = self.string(key, default="")
        if value.startswith("ssm:"):
            try:
                return resolve(value, aws)
            except Exception as exc:  # noqa: BLE001 - any failure to fetch a secret is a config problem
                self.problem(key, f"cannot read {value}: {exc}")
                return ""
        return value

    def integer(self, key: str, default: Any, low: int | None = None, high: int | None = None) -> Any:
        value = self.get(key)
        if value is None:
            return default
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            number = int(value)
        except (TypeError, ValueError):
            self.problem(key, f"must be a whole number, got {value!r}")
            return default
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.problem(key, f"must be {bounds}, got {number}")
            return default
        return number

    def number(self, key: str, default: float, low: float | None = None) -> float:
        value = self.get(key)
        if value is None:
            return default
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            self.problem(key, f"must be a number, got {value!r}")
            return default
        if low is not None and number < low:
            self.problem(key, f"must be at least {low}, got {number}")
            return default
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            self.problem(key, f"must be true or false, got {value!r}")
            return default
        return value

    def list(self, key: str) -> list[Any]:
        value = self.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(key, f"must be a list, got {type(value).__name__}")
            return []
        return value

    def string_list(self, key: str, default: Any) -> Any:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            self.problem(key, "must be a list of strings")
            return default
        return value

    def reject_unknown(self) -> None:
        """Misspelt keys are an error: a silently ignored `apply_requirement` would weaken security."""
        for section, allowed in _KNOWN_KEYS.items():
            node = self.raw if section == "" else self.raw.get(section)
            if section and node is not None and not isinstance(node, dict):
                self.problem(section, f"must be a mapping, got {type(node).__name__}")
                continue
            for k in (node or {}):
                if k not in allowed:
                    self.problem(f"{section + '.' if section else ''}{k}", "unknown key")
        for i, repo in enumerate(self.raw.get("repos") or []):
            if not isinstance(repo, dict):
                self.problem(f"repos[{i}]", "must be a mapping with at least a name")
                continue
            for k in repo:
                if k not in _REPO_KEYS:
                    self.problem(f"repos[{i}].{k}", "unknown key")
            for j, project in enumerate(repo.get("projects") or []):
                if not isinstance(project, dict):
                    self.problem(f"repos[{i}].projects[{j}]", "must be a mapping with at least a dir")
                    continue
                for k in project:
                    if k not in _PROJECT_KEYS:
                        self.problem(f"repos[{i}].projects[{j}].{k}", "unknown key")
