"""Repository paths as Terraform sees them: which files it loads, which changes can change a plan. Pure."""
from __future__ import annotations

# Terraform reads *.tf and *.tf.json; variable files and the provider lock change a plan too.
_TF_SUFFIXES = (".tf", ".tf.json")
_TRIGGER_SUFFIXES = _TF_SUFFIXES + (".tfvars", ".tfvars.json")
_TRIGGER_NAMES = (".terraform.lock.hcl",)


def is_tf_file(path: str) -> bool:
    """True for a file Terraform loads as configuration (`*.tf`, `*.tf.json`, not ignored names)."""
    name = path.rsplit("/", 1)[-1]
    return name.endswith(_TF_SUFFIXES) and not _ignored_by_terraform(name)


def is_trigger(path: str) -> bool:
    """True for a file whose change can change the plan of the dir holding it: Terraform files, variable
    files (`*.tfvars`, `*.tfvars.json`) and the provider lock `.terraform.lock.hcl`."""
    name = path[path.rfind("/") + 1:]
    if name in _TRIGGER_NAMES:
        return True
    return name.endswith(_TRIGGER_SUFFIXES) and not _ignored_by_terraform(name)


def tf_dir_of(path: str) -> str:
    """The repo-relative directory of a file path, '.' for the root."""
    cut = path.rfind("/")
    return path[:cut] if cut > 0 else "."


def normalise_dir(value: str) -> str:
    """A repo-relative dir as config and comment flags spell it: './a/b/' -> 'a/b', '' -> '.'."""
    parts = [p for p in value.split("/") if p not in ("", ".")]
    return "/".join(parts) or "."


def join_path(base: str, relative: str) -> str | None:
    """`base`/`relative` with `.`, `..` and empty segments resolved lexically; None if it leaves the repository."""
    parts: list[str] = [] if base == "." else base.split("/")
    for part in relative.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts) or "."


def _ignored_by_terraform(name: str) -> bool:
    # Terraform skips editor droppings and hidden files when it loads a dir.
    return name.startswith(".") or name.endswith("~") or (name.startswith("#") and name.endswith("#"))
