"""Module graphs cached in Redis: one per commit, and the parse of every Terraform file by its blob id.

RQ forks a work horse per job, so an in-process cache would die with each job; Redis is shared by every job
and every worker host. Both keys are content-addressed (a commit's sha, a blob's id), so an entry is never
stale: entries only expire (a day for a graph, a month for a file's parse) to bound memory. A new commit
re-reads its tree but parses only the Terraform files no earlier commit had, which is what keeps a push to a
large repository cheap: parsing HCL is the slow part (about 10 ms per kilobyte).

A malformed entry reads as missing (the graph is built again). Redis errors propagate, as elsewhere.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import redis

from bot.state import keys

GRAPH_TTL = 24 * 3600
CALLS_TTL = 30 * 24 * 3600


class ModuleCache:
    """Get and put cached module graphs (JSON-safe dicts) and per-file parses (`(sources, error)`)."""

    def __init__(self, conn: redis.Redis, format: int):
        self.conn = conn
        self.format = format  # the graph format: a new one ignores entries an older tfbot wrote

    def graph(self, repo: str, sha: str) -> dict[str, Any] | None:
        """The cached graph dict of `sha`, or None."""
        raw = self.conn.get(keys.module_graph(self.format, repo, sha))
        data = _loads(raw)
        return data if isinstance(data, dict) else None

    def put_graph(self, repo: str, sha: str, data: Mapping[str, Any]) -> None:
        self.conn.set(keys.module_graph(self.format, repo, sha), json.dumps(data, separators=(",", ":")),
                      ex=GRAPH_TTL)

    def calls(self, items: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[tuple[str, ...], str]]:
        """{(kind, blob id): (sources, error)} for the items cached; one MGET."""
        wanted = list(dict.fromkeys(items))
        if not wanted:
            return {}
        found: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {}
        values = self.conn.mget([keys.module_calls(self.format, kind, oid) for kind, oid in wanted])
        for item, raw in zip(wanted, values):
            data = _loads(raw)
            if isinstance(data, dict) and isinstance(data.get("sources"), list) and isinstance(data.get("error"), str):
                found[item] = (tuple(str(s) for s in data["sources"]), data["error"])
        return found

    def put_calls(self, parsed: Mapping[tuple[str, str], tuple[tuple[str, ...], str]]) -> None:
        if not parsed:
            return
        pipe = self.conn.pipeline(transaction=False)
        for (kind, oid), (sources, error) in parsed.items():
            pipe.set(keys.module_calls(self.format, kind, oid), json.dumps({"sources": list(sources), "error": error}),
                     ex=CALLS_TTL)
        pipe.execute()


def _loads(raw: Any) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
