"""The module graph (bot/projects/modules.py) and what it does to project detection: pure, no git."""
from __future__ import annotations

import time

import pytest

from bot.config import ProjectConfig, RepoConfig
from bot.projects.detection import affected_projects, all_projects
from bot.projects.modules import ModuleGraph, ParsedFile, TreeEntry, build_graph, files_to_parse, \
    parse_module_sources, resolve_links

REPO = "acme/infra"
DEFAULT = RepoConfig(name="acme/*")
LINK = object()


def graph_of(files: dict[str, object]) -> ModuleGraph:
    """A graph from {path: text, or (LINK, target)}: as the git adapter and bot/lifecycle/module_graphs.py build it."""
    entries, links, texts = [], {}, {}
    for i, (path, value) in enumerate(files.items()):
        oid = f"{i:040x}"
        if isinstance(value, tuple):
            entries.append(TreeEntry(path, "120000", oid))
            links[path] = value[1]
        else:
            entries.append(TreeEntry(path, "100644", oid))
            texts[path] = value
    parsed = {path: parse_module_sources(path, texts[path]) for path in files_to_parse(entries, links)}
    return build_graph(entries, links, parsed)


def dirs(projects: list) -> list[str]:
    return [p.dir for p in projects]


def default_projects(graph: ModuleGraph, *changed: str) -> list[str]:
    return dirs(affected_projects(REPO, DEFAULT, changed, graph.tf_dirs, graph))


NET = 'module "net" {\n  source = "../../modules/net"\n  cidr   = "10.0.0.0/16"\n}\n'
MONOREPO = {
    "envs/prod/main.tf": NET,
    "envs/dev/main.tf": NET + 'module "dns" { source = "./dns" }\n',
    "envs/dev/dns/main.tf": 'resource "terraform_data" "zone" {}\n',
    "envs/solo/main.tf": 'resource "terraform_data" "x" {}\n',
    "modules/net/main.tf": 'module "subnets" {\n  source = "./subnets"\n}\n',
    "modules/net/subnets/main.tf": 'resource "terraform_data" "s" {}\n',
    "modules/net/README.md": "docs\n",
}


# --- parsing ----------------------------------------------------------------------------------------


def test_only_module_blocks_with_literal_sources_count() -> None:
    text = '''
module "network" {
  source = "../../modules/network"
}
module "pkg" { source = "./packages//sub" }
# module "old" { source = "../../modules/old" }
/* module "older" { source = "./older" } */
module "registry" {
  source  = "hashicorp/consul/aws"
  version = "0.1.0"
}
module "git" { source = "git::https://example.com/vpc.git?ref=v1.2.0" }
resource "terraform_data" "copy" {
  provisioner "file" { source = "./files/app.conf" }
}
locals { source = "./not-a-module" }
'''
    assert parse_module_sources("main.tf", text) == ParsedFile(sources=(
        "../../modules/network", "./packages//sub", "hashicorp/consul/aws", "git::https://example.com/vpc.git?ref=v1.2.0",
    ))


def test_json_files_are_read_as_json() -> None:
    text = '{"module": {"cache": {"source": "../cache"}, "reg": {"source": "x/y/z"}}, "resource": {}}'
    assert parse_module_sources("a.tf.json", text).sources == ("../cache", "x/y/z")
    assert parse_module_sources("a.tf.json", '{"module": [{"a": {"source": "./a"}}]}').sources == ("./a",)
    assert "line 1" in parse_module_sources("a.tf.json", '{"module": ').error


def test_an_unparsable_file_is_an_error_value_without_its_text() -> None:
    parsed = parse_module_sources("main.tf", 'module "x" {\n  source = "./@alice"\n  nope = \n}\n')
    assert parsed.sources == () and parsed.error.startswith("line 3")
    assert "@alice" not in parsed.error  # the comment must not echo (and so mention) what the PR wrote


def test_files_naming_no_module_are_not_parsed() -> None:
    # Parsing is the slow part; a file without the word cannot call a module, even if it is not HCL.
    assert parse_module_sources("outputs.tf", "this is {{ not HCL") == ParsedFile()


# --- the graph --------------------------------------------------------------------------------------


def test_called_dirs_are_modules_and_the_rest_roots() -> None:
    graph = graph_of(MONOREPO)

    assert graph.modules == {"modules/net", "modules/net/subnets", "envs/dev/dns"}
    assert graph.roots == {"envs/prod", "envs/dev", "envs/solo"}
    assert graph.reads("envs/prod") == {"modules/net", "modules/net/subnets"}
    assert graph.reads("envs/dev") == {"modules/net", "modules/net/subnets", "envs/dev/dns"}
    assert graph.reads("envs/solo") == set()
    assert graph.warnings == ()


def test_a_module_change_plans_every_root_calling_it_and_never_the_module() -> None:
    graph = graph_of(MONOREPO)

    assert default_projects(graph, "modules/net/main.tf") == ["envs/dev", "envs/prod"]
    # Through another module: subnets is called by net, which both roots call.
    assert default_projects(graph, "modules/net/subnets/main.tf") == ["envs/dev", "envs/prod"]
    assert default_projects(graph, "envs/dev/dns/main.tf") == ["envs/dev"]
    assert default_projects(graph, "envs/solo/main.tf", "modules/net/README.md") == ["envs/solo"]
    assert dirs(all_projects(REPO, DEFAULT, graph.tf_dirs, graph)) == ["envs/dev", "envs/prod", "envs/solo"]


def test_without_a_graph_every_terraform_dir_is_a_root_as_before() -> None:
    tf_dirs = {"envs/prod", "modules/net"}
    assert dirs(affected_projects(REPO, DEFAULT, ["modules/net/main.tf"], tf_dirs)) == ["modules/net"]


def test_registry_git_and_outside_sources_are_left_alone() -> None:
    graph = graph_of({
        "main.tf": 'module "a" { source = "hashicorp/consul/aws" }\nmodule "b" { source = "git::https://x/y.git" }\n'
                   'module "c" { source = "../outside" }\nmodule "d" { source = "github.com/acme/net" }\n',
        "hashicorp/consul/aws/main.tf": "",
    })
    assert graph.calls == {} and graph.roots == {".", "hashicorp/consul/aws"}


def test_declared_projects_also_plan_when_their_dir_calls_a_changed_module() -> None:
    graph = graph_of(MONOREPO)
    config = RepoConfig(name="acme/*", projects=(
        ProjectConfig(dir="envs/prod", name="prod"),
        ProjectConfig(dir="envs/solo", name="solo"),
        ProjectConfig(dir="envs/dev", name="dev", when_modified=("*.tfvars",)),
    ))

    def declared(*changed: str) -> list[str]:
        return [p.name for p in affected_projects(REPO, config, changed, graph.tf_dirs, graph)]

    assert declared("modules/net/subnets/main.tf") == ["dev", "prod"]
    # when_modified still decides for a project's own files: dev watches only its *.tfvars.
    assert declared("envs/dev/main.tf") == []
    assert declared("envs/dev/prod.tfvars") == ["dev"]
    assert declared("envs/dev/dns/main.tf") == ["dev"]  # its own module, though when_modified names no subdir


# --- symlinks ---------------------------------------------------------------------------------------


def test_symlinks_are_resolved_inside_the_repository() -> None:
    links = {"envs/prod/net": "../../modules/net", "a/loop": "../a/loop", "abs": "/etc/passwd", "up": "../.."}
    assert resolve_links("envs/prod/net/main.tf", links) == "modules/net/main.tf"
    assert resolve_links("envs/prod/net/../x", links) == "modules/x"  # `..` climbs from the target, as the OS does
    assert resolve_links("a/loop/x", links) is None
    assert resolve_links("abs", links) is None
    assert resolve_links("up", links) is None


def test_a_change_to_a_symlink_target_plans_the_root_that_links_it() -> None:
    graph = graph_of({
        "envs/prod/main.tf": 'module "net" { source = "./net" }\n',
        "envs/prod/net": (LINK, "../../modules/net"),  # a linked module dir
        "envs/prod/common.tf": (LINK, "../../shared/common.tf"),  # a linked Terraform file
        "envs/prod/templates": (LINK, "../../assets/templates"),  # a linked data dir
        "envs/dev/main.tf": 'resource "terraform_data" "x" {}\n',
        "envs/dev/gone": (LINK, "../../missing"),
        "modules/net/main.tf": "",
        # Read as part of envs/prod: its sources are relative to envs/prod, where Terraform loads it.
        "shared/common.tf": 'module "sub" { source = "../../modules/sub" }\n',
        "modules/sub/main.tf": "",
        "assets/templates/user-data.sh": "#!/bin/sh\n",
    })

    assert graph.calls == {"envs/prod": {"modules/net", "modules/sub"}}
    assert graph.roots == {"envs/prod", "envs/dev"}  # shared/ is linked into prod: not a root of its own
    assert default_projects(graph, "modules/net/main.tf") == ["envs/prod"]
    assert default_projects(graph, "shared/common.tf") == ["envs/prod"]
    assert default_projects(graph, "modules/sub/main.tf") == ["envs/prod"]
    assert default_projects(graph, "assets/templates/user-data.sh") == ["envs/prod"]
    assert default_projects(graph, "envs/prod/templates") == ["envs/prod"]  # the link itself changed
    assert graph.reads("envs/prod") >= {"modules/net", "shared/common.tf", "assets/templates", "modules/sub"}


# --- warnings ---------------------------------------------------------------------------------------


def test_cycles_and_unparsable_files_are_warnings_not_errors() -> None:
    graph = graph_of({
        "envs/prod/main.tf": 'module "a" { source = "../../modules/a" }\n',
        "modules/a/main.tf": 'module "b" { source = "../b" }\n',
        "modules/b/main.tf": 'module "a" { source = "../a" }\n',
        "envs/self/main.tf": 'module "me" { source = "./" }\n',
        "envs/broken/main.tf": 'module "x" {\n  source = \n',
        "envs/other/main.tf": "",
    })

    assert graph.cycles == (("envs/self",), ("modules/a", "modules/b"))
    assert "envs/self" in graph.roots  # calling itself makes no dir a module
    assert default_projects(graph, "modules/b/main.tf") == ["envs/prod"]  # the walk ends despite the cycle
    assert [w.dirs for w in graph.warnings] == [("envs/broken",), ("envs/self",), ("modules/a", "modules/b")]
    assert "`envs/broken/main.tf` cannot be parsed (line 2" in graph.warnings[0].text
    # Shown where they bear on the PR: all of them when it changes a module (a broken file may hide a caller).
    assert len(graph.warnings_for(["modules/b/main.tf"], ["envs/prod"])) == 3
    assert graph.warnings_for(["envs/other/main.tf"], ["envs/other"]) == []
    assert len(graph.warnings_for(["envs/broken/main.tf"], ["envs/broken"])) == 1


def test_the_graph_survives_its_cache_shape() -> None:
    graph = graph_of({**MONOREPO, "envs/prod/x": (LINK, "../../modules/net/README.md"), "bad/main.tf": "module {"})
    again = ModuleGraph.from_dict(graph.to_dict())
    assert again == graph and again.roots == graph.roots and again.warnings == graph.warnings
    with pytest.raises(ValueError):
        ModuleGraph.from_dict({**graph.to_dict(), "format": 0})
    with pytest.raises(ValueError):
        ModuleGraph.from_dict({"format": 1})


def test_a_large_graph_answers_quickly() -> None:
    """2,000 roots over 200 modules in chains of 10: building from parsed files and walking it. Prints the time."""
    files: dict[str, object] = {}
    for m in range(200):
        nxt = f'module "n" {{ source = "../m{m + 1}" }}\n' if m % 10 != 9 else ""
        files[f"modules/m{m}/main.tf"] = nxt
    for r in range(2000):
        files[f"envs/r{r}/main.tf"] = f'module "m" {{ source = "../../modules/m{r % 200}" }}\n'
    entries = [TreeEntry(p, "100644", f"{i:040x}") for i, p in enumerate(files)]
    parsed = {p: parse_module_sources(p, str(t)) for p, t in files.items()}
    start = time.perf_counter()
    graph = build_graph(entries, {}, parsed)
    projects = affected_projects(REPO, DEFAULT, [f"modules/m{m}/main.tf" for m in range(0, 200, 10)], graph.tf_dirs,
                                 graph)
    elapsed = time.perf_counter() - start
    print(f"graph of {len(files)} dirs built and walked in {elapsed * 1000:.0f} ms")
    assert len(projects) == 200  # roots calling the head of each chain: r % 200 in (0, 10, ..., 190)
    assert elapsed < 2.0


def test_callers_the_base_branch_added_since_the_pr_branched_are_planned_too() -> None:
    # The PR changes net and deletes envs/dev; since it branched, main added envs/stage, which calls net.
    head = graph_of({p: t for p, t in MONOREPO.items() if not p.startswith("envs/dev/")})
    base = graph_of({**MONOREPO, "envs/stage/main.tf": NET})

    def planned(*changed: str) -> list[str]:
        return dirs(affected_projects(REPO, DEFAULT, changed, head.tf_dirs, head, base))

    changes = ("modules/net/main.tf", "envs/dev/main.tf", "envs/dev/dns/main.tf")
    assert dirs(affected_projects(REPO, DEFAULT, changes, head.tf_dirs, head)) == ["envs/prod"]
    assert planned(*changes) == ["envs/prod", "envs/stage"]  # not envs/dev: the PR deletes it
    assert planned("envs/solo/main.tf") == ["envs/solo"]


def test_a_json_file_nested_past_the_parser_is_a_warning_not_a_crash():
    from bot.projects.modules import parse_module_sources

    parsed = parse_module_sources("deep.tf.json", '{"module": ' + "[" * 100000 + "]" * 100000 + "}")
    assert parsed.error == "nested too deeply to read" and parsed.sources == ()
