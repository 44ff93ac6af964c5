"""Reading a project's Terraform state for change records (pure): the backend it lives in, and the identifiers
of the resources it holds.

`terraform state pull` needs an initialised working directory, and `terraform init` installs every provider the
configuration and the state name: tfbot gives it a configuration holding only the project's backend block (in
JSON syntax), and no provider at all (bot/adapters/terraform.py `init_backend`). So the block is read here, from
the project's own files: literal values only, as Terraform requires of a backend.
"""
from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bot.projects.modules import hcl_literal, parse_hcl

# Attributes of a managed resource whose values name it in AWS: its id, its ARN, and the names people use.
INDEXED_ATTRIBUTES: tuple[str, ...] = ("id", "arn", "name", "bucket")
MAX_ID_LENGTH = 512
_MAX_DEPTH = 8


class NoReadableBackend(ValueError):
    """The project's state is not where tfbot can read it; the message says why."""


@dataclass(frozen=True)
class Backend:
    """A project's backend block: its type (`s3`, `local`, ...) and settings, as `backend.tf.json` text."""

    type: str
    settings: dict[str, Any]

    def tf_json(self) -> str:
        return json.dumps({"terraform": {"backend": {self.type: self.settings}}}, indent=2, sort_keys=True)


def backend_of(files: Mapping[str, str]) -> Backend:
    """The backend block among a root module's files ({path: text}; `.tf` and `.tf.json`). Raises
    NoReadableBackend: no block (the default local state sits in whoever ran Terraform's working directory), an
    HCP Terraform `cloud` block, a value that is not a literal, a local path relative to the checkout, a file that
    cannot be parsed."""
    for path in sorted(files):
        if posixpath.basename(path).removesuffix(".json").removesuffix(".tf").endswith("_override"):
            continue  # override files change blocks; a backend there is rare and Terraform merges it: not read
        for terraform in _terraform_blocks(path, files[path]):
            if terraform.get("cloud") is not None:
                raise NoReadableBackend(f"{path} uses HCP Terraform (a `cloud` block), whose state tfbot does not read")
            for block in _blocks(terraform.get("backend")):
                for label, body in block.items():
                    kind = hcl_literal(label) if label.startswith('"') else label
                    if not kind or not isinstance(body, dict):
                        raise NoReadableBackend(f"{path}: a backend block without a type")
                    return _checked(path, Backend(kind, _literal(path, body, 0)))
    raise NoReadableBackend("no backend block: the state is kept in the working directory of whoever ran "
                            "Terraform")


def state_ids(state: Mapping[str, Any]) -> set[str]:
    """The identifiers of the managed resources a state (`terraform state pull`'s JSON, format 4) holds: the
    values of INDEXED_ATTRIBUTES of every instance."""
    found: set[str] = set()
    for resource in state.get("resources") or ():
        if not isinstance(resource, dict) or resource.get("mode", "managed") != "managed":
            continue  # a data source reads what something else manages
        for instance in resource.get("instances") or ():
            attributes = instance.get("attributes") if isinstance(instance, dict) else None
            for name in INDEXED_ATTRIBUTES:
                value = attributes.get(name) if isinstance(attributes, dict) else None
                if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH:
                    found.add(value)
    return found


def _terraform_blocks(path: str, text: str) -> Iterator[dict[str, Any]]:
    if "backend" not in text and "cloud" not in text:
        return
    if path.endswith(".json"):
        try:
            tree = json.loads(text)
        except (ValueError, RecursionError):
            raise NoReadableBackend(f"{path} is not valid JSON") from None
    else:
        try:
            tree = parse_hcl(text)
        except ValueError as exc:
            raise NoReadableBackend(f"{path}: {exc}") from None
    yield from (b for b in _blocks(tree.get("terraform") if isinstance(tree, dict) else None) if isinstance(b, dict))


def _blocks(value: Any) -> list[Any]:
    """A block as python-hcl2 gives it (a list of bodies) or as JSON syntax does (an object, or a list of them)."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _literal(path: str, value: Any, depth: int) -> Any:
    """A backend setting as JSON: HCL string literals unquoted, nested blocks kept; anything else refused."""
    if depth > _MAX_DEPTH:
        raise NoReadableBackend(f"{path}: the backend block is nested too deeply")
    if isinstance(value, dict):
        return {str(k): _literal(path, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(path, v, depth + 1) for v in value]
    if isinstance(value, str):
        if path.endswith(".json"):
            if "${" in value:
                raise NoReadableBackend(f"{path}: the backend block holds an expression")
            return value
        text = hcl_literal(value)
        if text is None:
            raise NoReadableBackend(f"{path}: the backend block holds an expression, not a literal value")
        return text
    if isinstance(value, (bool, int, float)):
        return value
    raise NoReadableBackend(f"{path}: the backend block holds a value tfbot cannot copy")


def _checked(path: str, backend: Backend) -> Backend:
    """A local backend's paths are taken relative to the working directory: only absolute ones lead to the state."""
    if backend.type == "local":
        for key in ("path", "workspace_dir"):
            value = backend.settings.get(key)
            if value is not None and (not isinstance(value, str) or not value.startswith("/")):
                raise NoReadableBackend(f"{path}: the local backend's {key} is relative to one checkout")
        if "path" not in backend.settings:
            raise NoReadableBackend(f"{path}: the local backend keeps terraform.tfstate in the working directory")
    return backend
