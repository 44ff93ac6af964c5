"""Project detection: changed files + repository config -> projects (pure functions, no git)."""
from __future__ import annotations

import fnmatch
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import ProjectConfig, RepoConfig
from bot.models import Project
from bot.projects.detection import affected_projects, all_projects, is_tf_file, select

REPO = "acme/infra"
DEFAULT = RepoConfig(name="acme/*", workflow="custom", apply_requirements=("approved",))


def declared(*projects: ProjectConfig) -> RepoConfig:
    return RepoConfig(name="acme/*", projects=projects)


def names(projects: list[Project]) -> list[str]:
    return [p.name for p in projects]


# --- default mode -----------------------------------------------------------------------------------


def test_default_mode_makes_each_changed_terraform_dir_a_project() -> None:
    changed = [
        "envs/prod/main.tf",
        "envs/prod/variables.tf",  # same dir: one project
        "envs/dev/terraform.tfvars",
        "network/main.tf.json",
        "main.tf",  # the root is a project named "."
        "docs/README.md",  # not Terraform
        "envs/prod/templates/user_data.sh",
    ]
    tf_dirs = {"envs/prod", "envs/dev", "network", ".", "modules/vpc"}

    projects = affected_projects(REPO, DEFAULT, changed, tf_dirs)

    assert projects == [
        Project(REPO, ".", ".", "default", "custom", True, ("approved",)),
        Project(REPO, "envs/dev", "envs/dev", "default", "custom", True, ("approved",)),
        Project(REPO, "envs/prod", "envs/prod", "default", "custom", True, ("approved",)),
        Project(REPO, "network", "network", "default", "custom", True, ("approved",)),
    ]


def test_default_mode_skips_dirs_without_terraform_files_at_head() -> None:
    changed = [
        "envs/old/main.tf",  # the PR deleted this project: nothing left to plan
        "envs/shared.tfvars",  # a vars file in a dir that holds no .tf
        "envs/prod/.terraform.lock.hcl",  # provider upgrades change the plan
        "envs/qa/.backup.tf",  # Terraform ignores hidden files
        "envs/qa/main.tf~",  # and editor backups
    ]
    tf_dirs = {"envs/prod", "envs/qa"}

    assert names(affected_projects(REPO, DEFAULT, changed, tf_dirs)) == ["envs/prod"]


def test_default_mode_output_is_sorted_and_independent_of_input_order() -> None:
    changed = [f"d{i}/main.tf" for i in (3, 1, 2)]
    tf_dirs = ["d1", "d2", "d3"]
    first = affected_projects(REPO, DEFAULT, changed, tf_dirs)
    assert names(first) == ["d1", "d2", "d3"]
    assert affected_projects(REPO, DEFAULT, reversed(changed), reversed(tf_dirs)) == first


def test_is_tf_file_follows_terraform_loading_rules() -> None:
    assert is_tf_file("a/main.tf") and is_tf_file("main.tf.json") and is_tf_file("override.tf")
    assert not is_tf_file("a/.hidden.tf") and not is_tf_file("a/#x.tf#") and not is_tf_file("x.tf~")
    assert not is_tf_file("a/vars.tfvars") and not is_tf_file("a/main.tf.bak")


# --- declared mode ----------------------------------------------------------------------------------


def test_declared_projects_match_their_globs_relative_to_their_dir() -> None:
    config = declared(
        ProjectConfig(name="prod", dir="envs/prod", workspace="prod", autoplan=False,
                      apply_requirements=("approved", "mergeable"), workflow="strict"),
        ProjectConfig(name="dev", dir="envs/dev"),
    )
    tf_dirs = {"envs/prod", "envs/dev"}

    assert affected_projects(REPO, config, ["envs/prod/main.tf"], tf_dirs) == [
        Project(REPO, "prod", "envs/prod", "prod", "strict", False, ("approved", "mergeable")),
    ]
    # `*.tf` relative to envs/dev must not reach into its subdirectories...
    assert affected_projects(REPO, config, ["envs/dev/sub/x.tf", "envs/dev/README.md"], tf_dirs) == []
    # ...nor into a sibling whose name merely starts with the same letters.
    assert affected_projects(REPO, config, ["envs/devtools/x.tf", "envs/x.tf"], tf_dirs) == []
    assert names(affected_projects(REPO, config, ["envs/dev/terraform.tfvars"], tf_dirs)) == ["dev"]


def test_globs_reach_up_and_across_dirs() -> None:
    config = declared(
        ProjectConfig(name="prod", dir="envs/prod", when_modified=("*.tf", "../../modules/**/*.tf")),
        ProjectConfig(name="dev", dir="envs/dev", when_modified=("*.tf", "../../modules/network/*.tf")),
        ProjectConfig(name="all", dir=".", when_modified=("**/*.tfvars",)),
        ProjectConfig(name="tree", dir="stacks", when_modified=("**",)),
    )
    tf_dirs = {"envs/prod", "envs/dev", ".", "stacks"}

    def hit(path: str) -> list[str]:
        return names(affected_projects(REPO, config, [path], tf_dirs))

    assert hit("modules/network/main.tf") == ["dev", "prod"]  # sorted by dir
    assert hit("modules/network/sub/x.tf") == ["prod"]  # `**` crosses dirs, `*` does not
    assert hit("modules/main.tf") == ["prod"]  # `**` also matches zero dirs
    assert hit("modules/network/main.tfvars") == ["all"]
    assert hit("prod.tfvars") == ["all"]  # `**/` at the root matches no dir too
    assert hit("stacks/a/b/c.txt") == ["tree"]  # a trailing `**` matches everything below
    assert hit("envs/modules/x.tf") == []  # `..` resolves from the dir, not from the file


def test_globs_that_leave_the_repository_never_match() -> None:
    config = declared(ProjectConfig(name="p", dir="a", when_modified=("../../x/*.tf", "../*.tf")))
    assert names(affected_projects(REPO, config, ["x/main.tf", "main.tf"], {"a"})) == ["p"]
    assert affected_projects(REPO, config, ["x/main.tf"], {"a"}) == []


def test_declared_project_whose_dir_is_gone_is_not_planned() -> None:
    config = declared(ProjectConfig(name="gone", dir="envs/gone"), ProjectConfig(name="here", dir="envs/here"))
    changed = ["envs/gone/main.tf", "envs/here/main.tf"]
    assert names(affected_projects(REPO, config, changed, {"envs/here"})) == ["here"]


def test_undeclared_dirs_are_not_projects_in_declared_mode() -> None:
    config = declared(ProjectConfig(name="prod", dir="envs/prod"))
    assert affected_projects(REPO, config, ["envs/dev/main.tf"], {"envs/prod", "envs/dev"}) == []


def test_character_classes_and_question_marks_stay_in_one_segment() -> None:
    config = declared(ProjectConfig(name="p", dir=".", when_modified=("env[0-9]/?.tf", "[!a]*.hcl")))
    tf_dirs = {"."}
    assert names(affected_projects(REPO, config, ["env1/a.tf"], tf_dirs)) == ["p"]
    assert names(affected_projects(REPO, config, ["b.hcl"], tf_dirs)) == ["p"]
    for path in ("envx/a.tf", "env1/ab.tf", "a.hcl", "env1/sub/a.tf"):
        assert affected_projects(REPO, config, [path], tf_dirs) == [], path


def _reference_match(pattern: str, path: str) -> bool:
    """A slow, obviously correct segment matcher: `**` = any run of segments, else fnmatch per segment."""
    pat, segs = pattern.split("/"), path.split("/")

    def go(i: int, j: int) -> bool:
        if i == len(pat):
            return j == len(segs)
        if pat[i] == "**":
            if i == len(pat) - 1:
                return j < len(segs)
            return any(go(i + 1, k) for k in range(j, len(segs) + 1))
        return j < len(segs) and fnmatch.fnmatchcase(segs[j], pat[i]) and go(i + 1, j + 1)

    return go(0, 0)


_SEGMENTS = st.sampled_from(["a", "b", "ab", "x.tf", "y.tf"])
_PATTERN_SEGMENTS = st.sampled_from(["a", "b", "*", "**", "a*", "?", "*.tf", "x.tf", "[ab]", "[!a]*"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_PATTERN_SEGMENTS, min_size=1, max_size=4), st.lists(_SEGMENTS, min_size=1, max_size=4))
def test_glob_matcher_agrees_with_a_reference_matcher(pattern_segments: list[str], path_segments: list[str]) -> None:
    pattern, path = "/".join(pattern_segments), "/".join(path_segments)
    config = declared(ProjectConfig(name="p", dir=".", when_modified=(pattern,)))

    matched = affected_projects(REPO, config, [path], {"."}) != []

    assert matched == _reference_match(pattern, path), (pattern, path)


# --- all_projects and select ------------------------------------------------------------------------


def test_all_projects_lists_every_project_at_the_head() -> None:
    assert names(all_projects(REPO, DEFAULT, ["b", ".", "a/c"])) == [".", "a/c", "b"]
    config = declared(ProjectConfig(name="x", dir="b", workspace="w2"), ProjectConfig(name="y", dir="b"),
                      ProjectConfig(name="z", dir="gone"))
    assert names(all_projects(REPO, config, {"b"})) == ["y", "x"]  # by dir, then workspace


def test_select_filters_by_comment_flags() -> None:
    config = declared(
        ProjectConfig(name="net-prod", dir="network", workspace="prod"),
        ProjectConfig(name="net-dev", dir="network", workspace="dev"),
        ProjectConfig(name="app", dir="app"),
    )
    projects = all_projects(REPO, config, {"network", "app"})

    assert names(select(projects)) == ["app", "net-dev", "net-prod"]
    assert names(select(projects, project="app")) == ["app"]
    assert names(select(projects, dir="./network/")) == ["net-dev", "net-prod"]
    assert names(select(projects, dir="network", workspace="prod")) == ["net-prod"]
    assert names(select(projects, workspace="default")) == ["app"]
    assert select(projects, project="nope") == []
    assert names(select(all_projects(REPO, DEFAULT, {"."}), dir="")) == ["."]


# --- performance ------------------------------------------------------------------------------------


def test_large_diffs_map_quickly() -> None:
    """5,000 changed files over 1,000 project dirs, both modes. Prints the time; asserts only the result."""
    dirs = [f"teams/t{i % 50}/svc{i}" for i in range(1000)]
    changed = [f"{dirs[i % 1000]}/f{i}.tf" for i in range(4000)]
    changed += [f"modules/m{i % 20}/sub/f{i}.tf" for i in range(500)] + [f"docs/p{i}.md" for i in range(500)]
    config = declared(*(
        ProjectConfig(name=d, dir=d, when_modified=("*.tf", "*.tfvars", "../../../modules/**/*.tf")) for d in dirs
    ))

    started = time.perf_counter()
    default = affected_projects(REPO, DEFAULT, changed, dirs)
    default_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    declared_projects = affected_projects(REPO, config, changed, dirs)
    declared_ms = (time.perf_counter() - started) * 1000
    print(f"\n5,000 files x 1,000 projects: default mode {default_ms:.1f} ms, declared mode {declared_ms:.1f} ms")

    assert len(default) == 1000
    assert len(declared_projects) == 1000


def test_project_at_rebuilds_a_lock_project_from_config():
    from bot.config import ProjectConfig, RepoConfig
    from bot.projects.detection import project_at

    repo_cfg = RepoConfig(name="acme/*", workflow="witness", apply_requirements=("approved",),
                          projects=(ProjectConfig(name="net", dir="network", workspace="prod", workflow="special"),))
    declared = project_at("acme/infra", repo_cfg, "network", "prod")
    assert (declared.name, declared.workflow) == ("net", "special")
    default = project_at("acme/infra", repo_cfg, "dns", "default")
    assert (default.name, default.workflow, default.apply_requirements) == ("dns", "witness", ("approved",))
    unknown = project_at("other/x", None, "app", "default", name="app")
    assert unknown.workflow == "default"


def test_deleted_roots_are_dirs_with_terraform_at_the_base_and_none_at_the_head():
    from bot.projects.detection import deleted_roots

    changed = ["old/main.tf", "old/vars.tf", "net/main.tf", "docs/readme.md"]
    assert deleted_roots(changed, {"old", "net"}, {"net"}) == ["old"]
    assert deleted_roots(["docs/readme.md"], {"old"}, set()) == []  # untouched by the PR
    assert deleted_roots(changed, {"net"}, {"net"}) == []
