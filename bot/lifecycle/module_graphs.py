"""The module graph of a commit, as a worker needs it: read from git, parsed, cached.

Three layers, cheapest first: this process's last few graphs (a handler asks for the same commit several
times within one job), the graph cached per commit in Redis (shared by every job and worker host; RQ forks a
work horse per job, so a process cache alone would rarely survive to the next job), and building it from
the commit's tree, where only Terraform files whose blob no earlier commit had are parsed (the rest come from
the per-file cache in Redis). Graph warnings (unparsable files, module cycles) are logged when a graph is
built; the PR sees them in its comment (bot/lifecycle/handlers/pull_requests.py).
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING

from bot.projects.modules import GRAPH_FORMAT, ModuleGraph, ParsedFile, build_graph, files_to_parse, \
    parse_module_sources
from bot.state.module_cache import ModuleCache

if TYPE_CHECKING:
    from bot.adapters.git import Checkouts
    from bot.services import WorkerServices

log = logging.getLogger(__name__)

_RECENT: OrderedDict[tuple[str, str], ModuleGraph] = OrderedDict()
_RECENT_MAX = 16


def module_graph(svc: WorkerServices, repo: str, sha: str) -> ModuleGraph:
    """The module graph of commit `sha` (already in the mirror) of `repo`.

    Raises what reading the commit raises (`CheckoutError` for a missing commit) and Redis errors; never for
    what the repository holds: unparsable files and cycles are the graph's `warnings`.
    """
    key = (repo, sha)
    graph = _RECENT.get(key)
    if graph is not None:
        _RECENT.move_to_end(key)
        return graph
    cache = ModuleCache(svc.redis, GRAPH_FORMAT)
    cached = cache.graph(repo, sha)
    try:
        graph = ModuleGraph.from_dict(cached) if cached is not None else None
    except ValueError:
        graph = None
    if graph is None:
        graph = read_graph(svc.checkouts, cache, repo, sha)
        cache.put_graph(repo, sha, graph.to_dict())
        for warning in graph.warnings:
            log.warning("%s at %s: %s", repo, sha[:8], warning.text)
    _RECENT[key] = graph
    while len(_RECENT) > _RECENT_MAX:
        _RECENT.popitem(last=False)
    return graph


PARSES_PER_WRITE = 50  # file parses stored in Redis per round trip while a graph is built


def read_graph(checkouts: Checkouts, cache: ModuleCache, repo: str, sha: str) -> ModuleGraph:
    """Build the graph of `sha` from its tree: links read, Terraform files parsed unless `cache` knows them."""
    entries = checkouts.tree_entries(repo, sha)
    links = [e for e in entries if e.is_link]
    link_texts = checkouts.read_blobs(repo, [e.oid for e in links])
    link_targets = {e.path: link_texts[e.oid] for e in links if e.oid in link_texts}
    wanted = {path: (_kind(path), entry.oid) for path, entry in files_to_parse(entries, link_targets).items()}
    known = cache.calls(wanted.values())
    texts = checkouts.read_blobs(repo, [item[1] for item in wanted.values() if item not in known])
    parsed: dict[str, ParsedFile] = {}
    new: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {}
    for path, item in wanted.items():
        if item in known:
            parsed[path] = ParsedFile(*known[item])
        elif item[1] in texts:
            parsed[path] = result = parse_module_sources(path, texts[item[1]])
            new[item] = (result.sources, result.error)
            if len(new) >= PARSES_PER_WRITE:
                # Kept as they come: a graph whose parsing outlasts its job is not begun again from nothing.
                cache.put_calls(new)
                new = {}
        else:  # larger than read_blobs reads (1 MiB): said, since the calls it may hold are not known
            parsed[path] = ParsedFile(error="larger than 1 MiB: not read, so the modules it calls are not known")
    cache.put_calls(new)
    return build_graph(entries, link_targets, parsed)


def _kind(path: str) -> str:
    return "tf.json" if path.endswith(".json") else "tf"
