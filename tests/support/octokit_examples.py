"""GitHub's own example webhook payloads, from the npm package @octokit/webhooks-examples.

The package is fetched with `npm pack` into `<repo>/.cache/` on first use
(tests/support/npm_package.py; nothing of it is committed). Its `api.github.com/index.json`
is a list of event definitions: `{name, description, actions, properties, examples}`.
"""
from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

from tests.support.npm_package import unpacked

PACKAGE = "@octokit/webhooks-examples"
# Pinned so that a new upstream release cannot change what CI checks against.
VERSION = "7.6.1"
CACHE_NAME = "octokit-webhooks-examples"
INDEX = Path("package") / "api.github.com" / "index.json"


def package_dir() -> Path:
    """The unpacked package, fetched with npm when not cached yet; skips the test if npm is absent."""
    return unpacked(PACKAGE, VERSION, CACHE_NAME, INDEX)


@functools.lru_cache(maxsize=1)
def _definitions() -> dict[str, dict[str, Any]]:
    with open(package_dir() / INDEX, encoding="utf-8") as index:
        return {definition["name"]: definition for definition in json.load(index)}


def event_definition(event: str) -> dict[str, Any]:
    """The package's definition of `event`: name, description, actions, properties, examples (a copy)."""
    definitions = _definitions()
    if event not in definitions:
        raise KeyError(f"{PACKAGE} has no event {event!r}; it has {sorted(definitions)}")
    return copy.deepcopy(definitions[event])


def load_examples(event: str, action: str | None = None) -> list[dict[str, Any]]:
    """GitHub's example payloads for `event` (e.g. "pull_request"), only those of `action` if given."""
    examples = event_definition(event)["examples"]
    if action is not None:
        examples = [example for example in examples if example.get("action") == action]
    return examples
