"""`tfbot.yaml` as values: every problem with its line and key, the server's override policy, inheritance of the
server entry's defaults, autodiscovery, and the schema editors read."""
from __future__ import annotations

import json
import pytest

from bot.cli import main
from bot.config.models import RepoConfig
from bot.config.repo_file import REPO_FILE, settings
from bot.models import Project
from bot.projects.detection import _compile_glob, affected_projects, autodiscovered

WORKFLOWS = frozenset({"default", "gated", "strict"})
SERVER = RepoConfig(name="acme/*", apply_requirements=("approved",), workflow="default")


def problems(text: str, server: RepoConfig = SERVER) -> list[str]:
    return [p.text() for p in settings(server, text, workflows=WORKFLOWS).problems]


def test_no_file_and_an_empty_file_leave_the_server_entry_as_it_is():
    assert settings(SERVER, None).config is SERVER and not settings(SERVER, None).present
    empty = settings(SERVER, "", workflows=WORKFLOWS)
    assert empty.present and empty.problems == () and empty.config.projects == ()


def test_the_files_projects_inherit_the_entrys_requirements_and_workflow_and_the_servers_own_stay():
    server = RepoConfig(name="acme/*", apply_requirements=("approved",), projects=({"dir": "old"},))
    found = settings(server, "projects:\n  - dir: network\n    autoplan: false\n  - name: zone\n    dir: dns\n"
                             "    when_modified: ['*.tf', '../shared/**']\n", workflows=WORKFLOWS)
    assert found.problems == ()
    [net, dns, old] = found.config.projects
    assert (net.name, net.autoplan, net.apply_requirements, net.workflow) == ("network", False, ("approved",),
                                                                               "default")
    assert (dns.name, dns.when_modified) == ("zone", ("*.tf", "../shared/**"))
    assert old.dir == "old"  # a project the server declares is not dropped by leaving it out of the file
    assert found.config.allow_fork_prs is server.allow_fork_prs  # the rest of the entry stays the server's


def test_a_project_the_server_declares_keeps_what_the_file_may_not_change():
    """A PR cannot drop the approval the server asks of one project by declaring that project again."""
    server = RepoConfig(name="acme/*", projects=(
        {"dir": "prod", "apply_requirements": ["approved"], "workflow": "strict",
         "credentials": {"apply": {"aws_role_arn": "arn:aws:iam::123456789012:role/prod-apply"}}},
        {"dir": "staging"}))
    found = settings(server, "projects:\n  - dir: prod\n    autoplan: false\n", workflows=WORKFLOWS)
    assert found.problems == ()
    prod = next(p for p in found.config.projects if p.dir == "prod")
    assert (prod.autoplan, prod.apply_requirements, prod.workflow) == (False, ("approved",), "strict")
    assert prod.credentials is not None and prod.credentials.apply.aws_role_arn.endswith("role/prod-apply")
    assert [p.dir for p in found.config.projects] == ["prod", "staging"]


def test_a_file_project_that_clashes_with_the_servers_is_a_problem_not_a_crash():
    server = RepoConfig(name="acme/*", projects=({"dir": "prod"},))
    [problem] = settings(server, "projects:\n  - dir: other\n    name: prod\n", workflows=WORKFLOWS).problems
    assert "duplicate project name 'prod'" in problem.text() and "the projects the server declares" in problem.text()


@pytest.mark.parametrize("text, expected", [
    ("projects: [\n", ["tfbot.yaml:2: not valid YAML: expected the node content, but found '<stream end>' while "
                      "parsing a flow node"]),
    ("- dir: a\n", ["tfbot.yaml:1: the top level must be a mapping of keys, got list"]),
    ("projects:\n  - dir: a\n    dir: b\n", ["tfbot.yaml:3: projects[0].dir: duplicate key (first on line 2)"]),
    ("projects:\n  - dir: a\n    autoplan: sometimes\n",
     ["tfbot.yaml:3: projects[0].autoplan: must be true or false, got 'sometimes'"]),
    ("projects:\n  - dir: ../outside\n",
     ["tfbot.yaml:2: projects[0].dir: must be a path inside the repository, got '../outside'"]),
    ("projects:\n  - dir: a\n  - dir: b\n    name: a\n",
     ["tfbot.yaml:4: projects[1].name: duplicate project name 'a'"]),
    ("projcts: []\n", ["tfbot.yaml:1: projcts: unknown key; did you mean 'projects'?"]),
    ("version: 2\n", ["tfbot.yaml:1: version: must be 1, got 2"]),
    ("projects:\n  - dir: a\n    workflow: gatd\n",
     ["tfbot.yaml:3: projects[0].workflow: unknown workflow 'gatd' (did you mean 'gated'?)",
      "tfbot.yaml:3: projects[0].workflow: workflow 'gatd' is not one this repository may use "
      "(repos[].allowed_workflows of acme/*: default)"]),
])
def test_each_problem_names_its_line_and_key(text, expected):
    assert sorted(problems(text)) == sorted(expected)


def test_keys_the_server_does_not_allow_are_refused_with_bad_values_in_the_same_round():
    text = ("projects:\n"
            "  - dir: network\n"
            "    apply_requirements: []\n"
            "    autoplan: maybe\n"
            "autodiscover:\n"
            "  enabled: false\n")
    allowed = ("(repos[].allowed_overrides of acme/*: projects, when_modified, autoplan, workflow, depends_on, "
               "execution_order_group, parallel_plan, parallel_apply, terraform_version, engine)")
    assert problems(text) == [
        f"tfbot.yaml:3: projects[0].apply_requirements: the server does not let a repository set this {allowed}",
        "tfbot.yaml:4: projects[0].autoplan: must be true or false, got 'maybe'",
        f"tfbot.yaml:5: autodiscover: the server does not let a repository set this {allowed}",
    ]


def test_the_server_chooses_what_a_repository_may_set_and_which_workflows_it_may_name():
    strict = RepoConfig(name="acme/*", allowed_overrides=())
    assert problems("projects:\n  - dir: a\n", strict) == [
        "tfbot.yaml:1: projects: the server does not let a repository set this (repos[].allowed_overrides of "
        "acme/*: nothing)"]
    open_ = RepoConfig(name="acme/*", allowed_overrides=("projects", "apply_requirements", "workflow",
                                                         "autodiscover"), allowed_workflows=("gated",))
    found = settings(open_, "projects:\n  - dir: a\n    apply_requirements: []\n    workflow: gated\n"
                            "autodiscover: {enabled: false}\n", workflows=WORKFLOWS)
    assert found.problems == ()
    assert (found.config.projects[0].apply_requirements, found.config.projects[0].workflow) == ((), "gated")
    assert problems("projects:\n  - dir: a\n    workflow: strict\n", open_) == [
        "tfbot.yaml:3: projects[0].workflow: workflow 'strict' is not one this repository may use "
        "(repos[].allowed_workflows of acme/*: default, gated)"]


def test_a_repository_may_run_its_projects_one_at_a_time_unless_the_server_says_otherwise():
    found = settings(SERVER, "parallel_apply: false\n", workflows=WORKFLOWS)
    assert found.problems == () and not found.config.parallel_apply and found.config.parallel_plan
    assert not settings(SERVER, "parallel_plan: false\n").config.parallel_plan
    assert problems("parallel_plan: false\n", RepoConfig(name="acme/*", allowed_overrides=("projects",))) == [
        "tfbot.yaml:1: parallel_plan: the server does not let a repository set this (repos[].allowed_overrides of "
        "acme/*: projects)"]
    assert problems("parallel_apply: sometimes\n") == ["tfbot.yaml:1: parallel_apply: must be true or false, got "
                                                         "'sometimes'"]


def test_a_problem_reads_as_file_line_key_and_reason():
    [problem] = settings(SERVER, "projects:\n  - dir: a\n    autoplan: 3\n", workflows=WORKFLOWS).problems
    assert (problem.line, problem.key) == (3, "projects[0].autoplan")
    assert problem.text().startswith(f"{REPO_FILE}:3: projects[0].autoplan: ")


def project(dir: str) -> Project:
    return Project(repo="acme/infra", name=dir, dir=dir)


def test_autodiscovery_can_be_turned_off_or_told_to_ignore_paths():
    found = [project("network"), project("examples/basic"), project("examples/full/eu"), project("sandbox")]
    assert autodiscovered(found, SERVER) == found
    ignoring = RepoConfig(name="acme/*", autodiscover={"ignore_paths": ["examples/**", "sand*"]})
    assert [p.dir for p in autodiscovered(found, ignoring)] == ["network"]
    assert autodiscovered(found, RepoConfig(name="acme/*", autodiscover={"enabled": False})) == []
    declared = RepoConfig(name="acme/*", projects=({"dir": "sandbox"},), autodiscover={"enabled": False})
    assert autodiscovered([project("sandbox")], declared) == [project("sandbox")]  # declared projects stay


def test_a_declared_project_matches_files_outside_its_dir_by_its_pattern():
    config = settings(SERVER, "projects:\n  - dir: network\n    when_modified: ['../shared/*.txt']\n",
                      workflows=WORKFLOWS).config
    assert [p.name for p in affected_projects("acme/infra", config, ["shared/cidrs.txt"], {"network"})] == \
        ["network"]


def test_the_schema_of_tfbot_yaml_is_printed_for_editors(capsys):
    assert main(["schema", "--repo"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert set(schema["properties"]) == {"version", "projects", "autodiscover", "parallel_plan", "parallel_apply"}
    assert schema["additionalProperties"] is False
    assert "when_modified" in schema["$defs"]["ProjectConfig"]["properties"]
    assert not {"env", "env_passthrough", "credentials"} & set(schema["$defs"]["ProjectConfig"]["properties"])
    assert "extra_args" not in json.dumps(schema)


@pytest.mark.parametrize("key, value", [("credentials", "{apply: {aws_role_arn: 'arn:aws:iam::123456789012:role/admin'}}"),
                                        ("env_passthrough", "[AWS_SECRET_ACCESS_KEY]"), ("env", "{A: b}")])
def test_a_repository_cannot_give_its_runs_credentials_or_tfbots_environment(key, value):
    """What a run is given is the server's alone: a PR naming a role or a variable of tfbot's would take it."""
    text = f"projects:\n  - dir: network\n    {key}: {value}\n"
    assert problems(text, RepoConfig(name="acme/*", allowed_overrides=("projects", "autoplan"))) == [
        f"tfbot.yaml:3: projects[0].{key}: a repository never sets what its runs are given: env, env_passthrough "
        "and credentials come from the server's config (repos[] entry acme/*)"]


def test_a_repository_cannot_widen_the_extra_arguments_its_comments_may_pass():
    """The allowlist of `plan -- ...` is the server's: a PR allowing itself -out would take the plan file."""
    wide = RepoConfig(name="acme/*", allowed_overrides=("projects", "autoplan", "autodiscover", "apply_requirements"))
    assert problems("extra_args: [-out, -chdir]\n", wide) == [
        "tfbot.yaml:1: extra_args: which extra arguments a `plan` comment may pass to Terraform is the server's "
        "decision alone (repos[].extra_args of acme/*)"]
    assert problems("projects:\n  - dir: network\n    extra_args: [-out]\n", wide) == [
        "tfbot.yaml:3: projects[0].extra_args: unknown key"]
    assert settings(wide, "projects:\n  - dir: network\n").config.extra_args == wide.extra_args


def test_a_refused_key_is_said_once_even_when_its_value_is_bad_too():
    assert problems("projects:\n  - dir: network\n    env_passthrough: [TFBOT_WEBHOOK_SECRET]\n") == [
        "tfbot.yaml:3: projects[0].env_passthrough: a repository never sets what its runs are given: env, "
        "env_passthrough and credentials come from the server's config (repos[] entry acme/*)"]


def test_a_hostile_file_costs_a_worker_nothing():
    """The file is PR code, read before anyone approved a fork's: an alias bomb, a deep nest or a huge file is a
    problem at once, never minutes of work or a crash."""
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(12))
    assert problems(bomb) == ["tfbot.yaml:1: anchors and aliases (& and *) are not supported here"]
    assert problems("[" * 5000) == ["tfbot.yaml: nested more than 20 levels deep"]
    assert problems("projects:" + " [" * 30 + "]" * 30) == ["tfbot.yaml:1: nested more than 20 levels deep"]
    assert problems("# x\n" * 70000) == ["tfbot.yaml: larger than 256 KiB"]


def test_patterns_cannot_make_matching_slow():
    assert problems("projects:\n  - dir: a\n    when_modified: ['**/a/**/b/**/c/**/x.tf']\n") == [
        "tfbot.yaml:3: projects[0].when_modified: '**/a/**/b/**/c/**/x.tf' has more than 3 `**` segments"]
    # Repeated `**` count once and are compiled as one: ten uncompressed `(?:[^/]+/)*` against a deep path that does
    # not match would backtrack for hours.
    stars = "/".join(["**"] * 10)
    config = settings(SERVER, f"projects:\n  - dir: a\n    when_modified: ['{stars}/x.tf']\n",
                      workflows=WORKFLOWS).config
    assert _compile_glob(f"{stars}/x.tf").regex.pattern.count("(?:[^/]+/)*") == 1
    deep = "a/" + "/".join(["d"] * 40) + "/y.tf"  # patterns are relative to the project's dir
    assert affected_projects("acme/infra", config, [deep], {"a"}) == []
    assert affected_projects("acme/infra", config, ["a/d/d/x.tf"], {"a"}) != []


def test_the_readmes_example_is_a_tfbot_yaml_the_default_policy_accepts():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    [example] = re.findall(r"```yaml\n(# tfbot\.yaml.*?)```", readme, re.S)
    found = settings(RepoConfig(name="acme/*"), example, workflows=WORKFLOWS)
    assert found.problems == ()
    assert {p.name for p in found.config.projects} == {"net", "dns", "apps/web:prod"}
