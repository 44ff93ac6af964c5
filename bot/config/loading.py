"""Reading config.yaml: YAML with positions and duplicate keys, environment overrides, secrets, and problems.

A broken config is reported whole, in one round, one line per problem:
`dotted.key (TFBOT_ENV_NAME): reason` (the variable only when the value came from it), or
`config.yaml:LINE:COL: reason` for what is wrong in the YAML text itself.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from bot.config.models import AwsConfig, Config, is_rsa_private_key

SecretResolver = Callable[[str, AwsConfig], str]


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


def _fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """Every (dotted key, field) of `model` and its nested models (not inside lists)."""
    for name, info in model.model_fields.items():
        yield prefix + name, info
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _fields(annotation, f"{prefix}{name}.")


def _extra(info: FieldInfo) -> dict[str, Any]:
    return info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}


# Environment variables that override a config key: declared on the fields (models.env).
ENV_OVERRIDES: dict[str, str] = {_extra(i)["env"]: k for k, i in _fields(Config) if "env" in _extra(i)}
SECRET_KEYS = tuple(k for k, i in _fields(Config) if _extra(i).get("secret"))


def load_config(
    path: str | Path,
    environ: Mapping[str, str] | None = None,
    resolve_secret: SecretResolver | None = None,
    check_terraform: bool = False,
    github_app: bool = True,
) -> Config:
    """Read the YAML file at `path`, apply environment overrides and `ssm:` references, and validate.

    With `check_terraform`, the Terraform binary is checked in the same round as the keys. Without
    `github_app` (commands that only read Redis), the App's id, key and webhook secret may be absent
    and are neither read from files nor fetched from SSM.
    """
    environ = os.environ if environ is None else environ
    path = Path(path)
    raw, problems = read_yaml(path)
    from_env: dict[str, str] = {}
    for env_name, dotted in ENV_OVERRIDES.items():
        if environ.get(env_name):
            _set_dotted(raw, dotted, environ[env_name])
            from_env[dotted] = env_name
    return parse_config(raw, base_dir=path.parent.resolve(), resolve_secret=resolve_secret, source=path,
                        from_env=from_env, problems=problems, check_terraform=check_terraform, github_app=github_app)


def read_yaml(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The top-level mapping of a YAML file, and a problem per duplicate key; ConfigError if it is not one."""
    if not path.is_file():
        raise ConfigError([f"{path}: no such config file (start from config.yaml in the tfbot repository)"])
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read: {exc.strerror}"]) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        problems = [f"{path}:{line}: {key}: {reason}" for key, line, reason in duplicate_keys(node)]
        raw = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_yaml_problem(path, exc)]) from None
    finally:
        loader.dispose()
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}"])
    return raw, problems


def yaml_error_at(exc: yaml.MarkedYAMLError) -> tuple[yaml.Mark | None, str]:
    """Where the YAML goes wrong (None: unknown) and what is wrong there."""
    if exc.context and "quoted scalar" in exc.context and exc.context_mark is not None:
        return exc.context_mark, "unclosed quoted string"
    return exc.problem_mark or exc.context_mark, " ".join(p for p in (exc.problem, exc.context) if p) or "invalid YAML"


def _yaml_problem(path: Path, exc: yaml.MarkedYAMLError) -> str:
    """One line: where the YAML goes wrong and what is wrong there."""
    mark, reason = yaml_error_at(exc)
    where = f"{mark.line + 1}:{mark.column + 1}" if mark is not None else "1:1"
    return f"{path}:{where}: {reason}"


def duplicate_keys(node: yaml.Node | None, key: str = "") -> Iterator[tuple[str, str, str]]:
    """(dotted key, 'line:col', reason) for every key set twice in one mapping: YAML would keep the last silently."""
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            dotted = f"{key}.{name}" if key else str(name)
            mark = key_node.start_mark
            if name in first:
                yield dotted, f"{mark.line + 1}:{mark.column + 1}", f"duplicate key (first on line {first[name]})"
            else:
                first[name] = mark.line + 1
            yield from duplicate_keys(value_node, dotted)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from duplicate_keys(item, f"{key}[{i}]")


def parse_config(
    raw: dict[str, Any],
    base_dir: Path,
    resolve_secret: SecretResolver | None = None,
    source: Path | None = None,
    from_env: Mapping[str, str] | None = None,
    problems: list[str] | None = None,
    check_terraform: bool = False,
    github_app: bool = True,
) -> Config:
    """Validate a raw mapping into a Config; raise ConfigError listing every problem."""
    report = _Problems(from_env or {}, list(problems or ()))
    raw = dict(raw)
    _resolve_secrets(raw, report, resolve_secret or _default_secret_resolver, github_app)
    if github_app:
        _read_private_key(raw, base_dir, report)
    workflows = _workflow_names(raw, base_dir, report)
    config: Config | None = None
    try:
        config = Config.model_validate(raw, context={"base_dir": base_dir, "github_app": github_app,
                                                     "workflows": workflows})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            report.add(*describe_error(error))
    if check_terraform:
        _check_terraform(raw, base_dir, report)
    _check_sandbox(raw, report)
    if report.lines or config is None:
        raise ConfigError(report.lines)
    config._source = source
    return config


class _Problems:
    """Problem lines, at most one per key, naming the environment variable a value came from."""

    def __init__(self, from_env: Mapping[str, str], lines: list[str]):
        self.from_env = from_env
        self.lines = lines
        self.keys: set[str] = set()

    def add(self, key: str, reason: str, also: tuple[str, ...] = ()) -> None:
        if key in self.keys:
            return  # one true line per key: a secret SSM could not read is not also "missing"
        self.keys.update((key, *also))
        variable = self.from_env.get(key)
        self.lines.append(f"{key} ({variable}): {reason}" if variable else f"{key}: {reason}")


def _get(raw: dict[str, Any], dotted: str) -> Any:
    node: Any = raw
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    *parents, last = dotted.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def _resolve_secrets(raw: dict[str, Any], report: _Problems, resolve: SecretResolver, github_app: bool) -> None:
    """Replace `ssm:/name` values of secret keys by what SSM holds; a failure is that key's one problem."""
    aws_raw = raw.get("aws") if isinstance(raw.get("aws"), dict) else {}
    try:
        aws = AwsConfig.model_validate(aws_raw)
    except ValidationError:
        aws = AwsConfig()  # its own problems are reported with the rest
    for key in SECRET_KEYS:
        if not github_app and key != "redis_url":
            continue
        value = _get(raw, key)
        if isinstance(value, str) and value.strip().startswith("ssm:"):
            reference = value.strip()
            try:
                _set_dotted(raw, key, resolve(reference, aws))
            except Exception as exc:  # noqa: BLE001 - any failure to fetch a secret is a config problem
                report.add(key, f"cannot read {reference}: {exc}")
    if github_app:
        _resolve_receiver_secrets(raw, report, resolve, aws)


def _resolve_receiver_secrets(raw: dict[str, Any], report: _Problems, resolve: SecretResolver, aws: AwsConfig) -> None:
    """`notifications[i].url` and `.secret` written `ssm:/name`: each read like the keys of SECRET_KEYS."""
    entries = raw.get("notifications")
    if not isinstance(entries, list):
        return
    raw["notifications"] = entries = [dict(e) if isinstance(e, dict) else e for e in entries]
    for i, entry in enumerate(entries):
        for name in ("url", "secret"):
            value = entry.get(name) if isinstance(entry, dict) else None
            if isinstance(value, str) and value.strip().startswith("ssm:"):
                reference = value.strip()
                try:
                    entry[name] = resolve(reference, aws)
                except Exception as exc:  # noqa: BLE001 - any failure to fetch a secret is a config problem
                    report.add(f"notifications[{i}].{name}", f"cannot read {reference}: {exc}")


def _read_private_key(raw: dict[str, Any], base_dir: Path, report: _Problems) -> None:
    """`github.private_key_path` becomes `github.private_key`; what is wrong with the file is said at the path."""
    github = raw.get("github")
    if not isinstance(github, dict) or not github.get("private_key_path"):
        return
    if github.get("private_key"):
        report.add("github.private_key", "set either github.private_key or github.private_key_path, not both",
                   also=("github.private_key_path",))
        return
    path = Path(str(github["private_key_path"]).strip()).expanduser()
    path = path if path.is_absolute() else base_dir / path
    try:
        key = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a text file"
        report.add("github.private_key_path", f"cannot read {path}: {reason}", also=("github.private_key",))
        return
    if not is_rsa_private_key(key):
        report.add("github.private_key_path", f"{path} is not a PEM-encoded RSA private key (download one from the "
                   "GitHub App settings)", also=("github.private_key",))
        return
    github["private_key"] = key


def _workflow_names(raw: dict[str, Any], base_dir: Path, report: _Problems) -> frozenset[str] | None:
    """The names of the built-in workflows and those in `workflows_dir`, which `workflow` keys must name.

    None when the directory is not one (the model reports that) or a file in it is broken (reported here, at
    workflows_dir): then names are not checked, rather than all reported unknown.
    """
    from bot.config.workflows import WorkflowError, load_workflows

    value = raw.get("workflows_dir")
    directory: Path | None = None
    if isinstance(value, str) and value.strip() not in ("", "."):
        directory = Path(value.strip()).expanduser()
        directory = directory if directory.is_absolute() else base_dir / directory
        if not directory.is_dir():
            return None
    elif value not in (None, "", "."):
        return None
    try:
        return frozenset(load_workflows(directory))
    except WorkflowError as exc:
        report.add("workflows_dir", str(exc))
        return None


def _check_sandbox(raw: dict[str, Any], report: _Problems) -> None:
    """`terraform.sandbox.mode: bubblewrap` on a host where bubblewrap cannot run stops every command that loads it."""
    if _get(raw, "terraform.sandbox.mode") != "bubblewrap":
        return
    from bot.adapters.runners import probe_bubblewrap

    problem = probe_bubblewrap()
    if problem:
        report.add("terraform.sandbox.mode", f"bubblewrap cannot run here: {problem} (or set mode: auto or none)")


def _check_terraform(raw: dict[str, Any], base_dir: Path, report: _Problems) -> None:
    import tempfile

    from bot.adapters.preflight import check_terraform

    binary = _get(raw, "terraform.binary")
    binary = binary.strip() if isinstance(binary, str) and binary.strip() else "terraform"
    with tempfile.TemporaryDirectory(prefix="tfbot-check-") as scratch:
        check = check_terraform(binary, Path(scratch))
        for section, engine in (("terraform", "terraform"), ("tofu", "opentofu")):
            _check_listed(raw, section, engine, Path(scratch), report)
    if not check.ok:
        report.add("terraform.binary", check.error)


def _check_listed(raw: dict[str, Any], section: str, engine: str, scratch: Path, report: _Problems) -> None:
    """Each `<section>.binaries` entry runs and reports its key (what the model cannot see: it never runs them)."""
    from bot.adapters.preflight import check_listed_binaries
    from bot.projects.versions import ConstraintError, parse_version

    listed = _get(raw, f"{section}.binaries")
    if not isinstance(listed, dict):
        return  # not a mapping: the model says so
    usable = {}
    for key, value in listed.items():
        try:
            parse_version(str(key))
        except ConstraintError:
            continue  # a key that is not a version: the model says so
        if isinstance(value, str) and value.strip():
            usable[str(key).strip().removeprefix("v")] = value.strip()
    for key, problem in check_listed_binaries(usable, engine, scratch):
        report.add(f'{section}.binaries."{key}"', problem)


# -- pydantic's errors as tfbot's lines ---------------------------------------------------------------

_TYPE_REASONS = {
    "int": "must be a whole number", "float": "must be a number", "bool": "must be true or false",
    "string": "must be a string", "list": "must be a list", "tuple": "must be a list",
    "model": "must be a mapping", "dict": "must be a mapping",
}


def describe_error(error: ErrorDetails, root: type[BaseModel] = Config) -> tuple[str, str]:
    """(dotted key, reason) of one pydantic error from validating `root` (the server config, or tfbot.yaml)."""
    loc = list(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "at_key":
        loc += split_key(ctx["key"])
    key = _dotted(loc)
    field = _field_at(loc, root)
    secret = field is not None and _extra(field).get("secret")
    value = error.get("input")
    if kind == "missing":
        hint = field.description if field is not None and field.description else "required"
        variable = _extra(field).get("env") if field is not None else None
        return key, f"missing: {hint}" + (f" (or {variable})" if variable else "")
    if kind == "extra_forbidden":
        return key, "unknown key" + _suggestion(loc, root)
    if kind == "at_key":
        return key, str(ctx["reason"])
    if kind in ("value_error", "assertion_error"):
        return key, str(ctx.get("error", error["msg"]))
    base = kind.split("_")[0]
    if kind == "greater_than_equal":
        reason = f"must be at least {_number(ctx['ge'])}"
    elif kind == "less_than_equal":
        reason = f"must be at most {_number(ctx['le'])}"
    elif kind == "string_too_short" and not value:
        return key, "missing: " + (field.description if field is not None and field.description else "required")
    elif base in _TYPE_REASONS and (kind.endswith(("_type", "_parsing")) or kind == "int_from_float"):
        reason = _TYPE_REASONS[base]
    else:
        reason = error["msg"].replace("Input should be", "must be")
    if not secret and not isinstance(value, (dict, list)):
        reason += f", got {value!r}"
    return key, reason


def _number(limit: Any) -> str:
    """A limit as a person writes it: 0, not 0.0 (pydantic gives a float field's limits as floats)."""
    return f"{limit:g}" if isinstance(limit, float) else str(limit)


def split_key(key: str) -> list[Any]:
    """`projects[2].name` as loc parts: ['projects', 2, 'name']."""
    parts: list[Any] = []
    for part in key.split("."):
        name, *indices = part.replace("]", "").split("[")
        parts.append(name)
        parts.extend(int(i) for i in indices)
    return parts


def _dotted(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(loc: list[Any], root: type[BaseModel]) -> type[BaseModel] | None:
    """The model class that holds the last key of `loc`."""
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(part)
        model = _inner_model(info.annotation) if info is not None else None
    return model


def _inner_model(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _field_at(loc: list[Any], root: type[BaseModel]) -> FieldInfo | None:
    names = [p for p in loc if not isinstance(p, int)]
    if not names or isinstance(loc[-1], int):
        return None
    model = _model_at(loc, root)
    return model.model_fields.get(names[-1]) if model is not None else None


def _suggestion(loc: list[Any], root: type[BaseModel]) -> str:
    model = _model_at(loc, root)
    if model is None:
        return ""
    if loc[-1] == "password" and "password_hash" in model.model_fields:
        return ": store only a hash, made by `tfbot hash-password`"
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _default_secret_resolver(reference: str, aws: AwsConfig) -> str:
    from bot.adapters.secrets import resolve_secret

    return resolve_secret(reference, aws)
