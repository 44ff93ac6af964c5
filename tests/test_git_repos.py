"""The local GitHub-repository stand-ins behave like GitHub's repositories to a plain git client."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.git_repos import ZERO_SHA, GitError, MergeConflict, RemoteRepo, git_env


def git(cwd: Path, *args: str) -> str:
    """Run git as a client of the stand-in would, returning stdout."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=git_env())
    assert result.returncode == 0, f"git {args} failed: {result.stderr}"
    return result.stdout


def clone(repo: RemoteRepo, dest: Path) -> Path:
    git(dest.parent, "clone", "--quiet", repo.clone_url, str(dest))
    return dest


def seeded(repo: RemoteRepo) -> str:
    return repo.commit("main", {"README.md": "hello\n", "envs/prod/main.tf": "# prod\n"}, "Initial commit")


def test_clone_url_is_a_file_url_that_plain_git_clones(remote_repo: RemoteRepo, tmp_path: Path) -> None:
    sha = seeded(remote_repo)
    assert remote_repo.clone_url.startswith("file://")
    assert remote_repo.clone_url.endswith("/acme/infra.git")

    work = clone(remote_repo, tmp_path / "clone")

    assert git(work, "rev-parse", "HEAD").strip() == sha
    assert git(work, "symbolic-ref", "--short", "HEAD").strip() == "main"
    assert (work / "envs/prod/main.tf").read_text() == "# prod\n"
    assert git(work, "log", "-1", "--format=%s").strip() == "Initial commit"


def test_commit_extends_the_branch_and_none_deletes(remote_repo: RemoteRepo) -> None:
    first = seeded(remote_repo)

    second = remote_repo.commit("main", {"README.md": None, "new dir/a file.tf": "x = 1\n"}, "Second")

    assert remote_repo.branch_sha("main") == second
    assert remote_repo.parents(second) == [first]
    assert remote_repo.list_files(second) == ["envs/prod/main.tf", "new dir/a file.tf"]
    assert remote_repo.read_file(second, "README.md") is None
    assert remote_repo.read_file(first, "README.md") == "hello\n"


def test_new_branch_starts_from_default_branch_or_given_parent(remote_repo: RemoteRepo) -> None:
    base = seeded(remote_repo)
    feature = remote_repo.commit("feature", {"envs/prod/main.tf": "# changed\n"})
    stacked = remote_repo.commit("stacked", {"extra.tf": "\n"}, parent_branch="feature")

    assert remote_repo.parents(feature) == [base]
    assert remote_repo.parents(stacked) == [feature]
    assert remote_repo.read_file(stacked, "envs/prod/main.tf") == "# changed\n"
    assert remote_repo.branch_sha("main") == base


def test_branch_cannot_start_before_default_branch_exists(remote_repo: RemoteRepo) -> None:
    with pytest.raises(GitError, match="has no commits yet"):
        remote_repo.commit("feature", {"a.tf": ""})


def test_identical_commits_on_two_branches_get_distinct_shas(remote_repo: RemoteRepo) -> None:
    seeded(remote_repo)
    one = remote_repo.commit("pr-1", {"same.tf": "same\n"}, "Same change")
    two = remote_repo.commit("pr-2", {"same.tf": "same\n"}, "Same change")
    assert one != two


def test_pull_ref_is_fetchable_as_on_github(remote_repo: RemoteRepo, tmp_path: Path) -> None:
    seeded(remote_repo)
    head = remote_repo.commit("feature", {"envs/prod/main.tf": "# pr\n"})
    remote_repo.create_pull_ref(7, head)
    remote_repo.delete_branch("feature")
    work = clone(remote_repo, tmp_path / "clone")

    assert f"{head}\trefs/pull/7/head" in git(work, "ls-remote", remote_repo.clone_url)
    git(work, "fetch", "--quiet", "origin", "pull/7/head")
    assert git(work, "rev-parse", "FETCH_HEAD").strip() == head


def test_commit_reachable_only_from_pull_ref_can_be_fetched_by_sha(remote_repo: RemoteRepo, tmp_path: Path) -> None:
    seeded(remote_repo)
    head = remote_repo.commit("feature", {"x.tf": "\n"})
    remote_repo.create_pull_ref(3, head)
    remote_repo.delete_branch("feature")
    work = clone(remote_repo, tmp_path / "clone")

    git(work, "fetch", "--quiet", "origin", head)

    assert git(work, "cat-file", "-t", head).strip() == "commit"


def test_merge_makes_a_real_merge_commit_of_both_sides(remote_repo: RemoteRepo) -> None:
    seeded(remote_repo)
    pr_tip = remote_repo.commit("feature", {"envs/prod/main.tf": "# from pr\n"})
    main_tip = remote_repo.push_direct("main", {"envs/dev/main.tf": "# from main\n"})

    merged = remote_repo.merge("feature", message="Merge pull request #1 from acme/feature")

    assert remote_repo.branch_sha("main") == merged
    assert remote_repo.parents(merged) == [main_tip, pr_tip]
    assert remote_repo.read_file(merged, "envs/prod/main.tf") == "# from pr\n"
    assert remote_repo.read_file(merged, "envs/dev/main.tf") == "# from main\n"
    assert remote_repo.commits_between(main_tip, merged)[-1]["message"] == "Merge pull request #1 from acme/feature"


def test_merge_never_fast_forwards(remote_repo: RemoteRepo) -> None:
    base = seeded(remote_repo)
    pr_tip = remote_repo.commit("feature", {"a.tf": "\n"})

    merged = remote_repo.merge("feature")

    assert merged != pr_tip
    assert remote_repo.parents(merged) == [base, pr_tip]


def test_squash_merge_has_one_parent_and_the_merged_tree(remote_repo: RemoteRepo) -> None:
    base = seeded(remote_repo)
    remote_repo.commit("feature", {"a.tf": "a\n"})
    remote_repo.commit("feature", {"b.tf": "b\n"})

    merged = remote_repo.merge("feature", squash=True)

    assert remote_repo.parents(merged) == [base]
    assert remote_repo.read_file(merged, "a.tf") == "a\n"
    assert remote_repo.read_file(merged, "b.tf") == "b\n"


def test_conflicting_merge_raises_and_leaves_base_alone(remote_repo: RemoteRepo) -> None:
    seeded(remote_repo)
    remote_repo.commit("feature", {"envs/prod/main.tf": "# pr\n"})
    main_tip = remote_repo.push_direct("main", {"envs/prod/main.tf": "# main\n"})

    with pytest.raises(MergeConflict, match="envs/prod/main.tf"):
        remote_repo.merge("feature")

    assert remote_repo.branch_sha("main") == main_tip


def test_merge_ref_is_a_test_merge_that_does_not_move_base(remote_repo: RemoteRepo) -> None:
    seeded(remote_repo)
    pr_tip = remote_repo.commit("feature", {"a.tf": "\n"})
    main_tip = remote_repo.push_direct("main", {"b.tf": "\n"})

    merge_sha = remote_repo.create_merge_ref(4, "feature")

    assert remote_repo.ref_sha("refs/pull/4/merge") == merge_sha
    assert remote_repo.parents(merge_sha) == [main_tip, pr_tip]
    assert remote_repo.branch_sha("main") == main_tip
    assert remote_repo.list_files(merge_sha) == ["README.md", "a.tf", "b.tf", "envs/prod/main.tf"]


def test_changed_files_are_relative_to_the_merge_base(remote_repo: RemoteRepo) -> None:
    seeded(remote_repo)
    remote_repo.commit("feature", {"envs/prod/main.tf": "# pr\n", "envs/new/main.tf": "\n", "README.md": None})
    remote_repo.push_direct("main", {"unrelated.tf": "\n"})

    changed = remote_repo.changed_files("main", "feature")

    assert sorted(changed, key=lambda f: f["filename"]) == [
        {"filename": "README.md", "status": "removed"},
        {"filename": "envs/new/main.tf", "status": "added"},
        {"filename": "envs/prod/main.tf", "status": "modified"},
    ]


def test_commits_between_lists_pushed_commits_oldest_first(remote_repo: RemoteRepo) -> None:
    before = seeded(remote_repo)
    one = remote_repo.push_direct("main", {"a.tf": "\n"}, "One")
    two = remote_repo.push_direct("main", {"a.tf": "changed\n", "README.md": None}, "Two\n\nbody")

    commits = remote_repo.commits_between(before, two)

    assert [c["id"] for c in commits] == [one, two]
    assert commits[0]["added"] == ["a.tf"] and commits[0]["modified"] == [] == commits[0]["removed"]
    assert commits[1]["modified"] == ["a.tf"] and commits[1]["removed"] == ["README.md"]
    assert commits[1]["message"] == "Two\n\nbody"
    assert commits[1]["timestamp"] > commits[0]["timestamp"]
    assert [c["id"] for c in remote_repo.commits_between(ZERO_SHA, two)] == [two]
    assert remote_repo.commits_between(ZERO_SHA, before)[0]["added"] == ["README.md", "envs/prod/main.tf"]


def test_set_branch_rewrites_history_like_a_force_push(remote_repo: RemoteRepo) -> None:
    base = seeded(remote_repo)
    remote_repo.commit("feature", {"a.tf": "\n"})

    remote_repo.set_branch("feature", base)

    assert remote_repo.branch_sha("feature") == base


def test_push_direct_refuses_a_missing_branch(remote_repo: RemoteRepo) -> None:
    seeded(remote_repo)
    with pytest.raises(GitError, match="does not exist"):
        remote_repo.push_direct("nope", {"a.tf": ""})


def test_unknown_branch_is_an_error(remote_repo: RemoteRepo) -> None:
    assert not remote_repo.has_branch("main")
    with pytest.raises(GitError):
        remote_repo.branch_sha("main")


def test_user_git_config_does_not_leak_in(
    make_remote_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile = tmp_path / "gitconfig"
    # A broken global config makes every git command that reads it fail outright.
    hostile.write_text("[init]\n\tdefaultBranch = trunk\n[[[ not a config line\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(hostile))
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    repo = make_remote_repo("other/repo")

    first = repo.commit("main", {"a.tf": "\n"})
    repo.commit("b", {"b.tf": "\n"})
    merged = repo.merge("b")

    assert repo.branch_sha("main") == merged
    assert repo.parents(merged)[0] == first
    assert repo.path == tmp_path / "github" / "other" / "repo.git"


def test_many_commits_stay_a_linear_history(remote_repo: RemoteRepo) -> None:
    seeded(remote_repo)
    shas = [remote_repo.push_direct("main", {"counter.txt": f"{i}\n"}, f"Commit {i}") for i in range(30)]

    assert remote_repo.branch_sha("main") == shas[-1]
    assert remote_repo.read_file("main", "counter.txt") == "29\n"
    assert len(remote_repo.commits_between(remote_repo.parents(shas[0])[0], shas[-1])) == 30
