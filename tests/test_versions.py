"""Choosing a project's binary (bot/projects/versions.py, pure): HashiCorp constraints translated for `packaging`,
the choice over the installed versions, a root's `required_version`, and the sentence a PR reads when nothing fits.
Also the worker's reading of a root's files (bot/lifecycle/binaries.py), which are PR code."""
from __future__ import annotations

import os

import pytest

from bot.lifecycle.binaries import MAX_FILE_BYTES, root_files
from bot.projects.versions import (Binaries, Binary, Constraint, ConstraintError, NoFit, choose, choose_for_project,
                                   parse_constraint, parse_version, required_versions)

DEFAULT = Binary("terraform", "1.11.4", "terraform")
OLD = Binary("terraform", "1.0.3", "/opt/terraform-1.0.3/terraform")
NINE = Binary("terraform", "1.9.8", "/opt/terraform-1.9.8/terraform")
BETA = Binary("terraform", "1.12.0-beta1", "/opt/terraform-1.12.0-beta1/terraform")
TOFU_OLD = Binary("opentofu", "1.7.3", "/opt/tofu-1.7.3/tofu")
TOFU = Binary("opentofu", "1.8.5", "/opt/tofu-1.8.5/tofu")
SERVER = Binaries(DEFAULT, (OLD, NINE, BETA, TOFU_OLD, TOFU))


@pytest.mark.parametrize("constraint, version, fits", [
    ("1.0.3", "1.0.3", True),  # no operator: exactly
    ("= 1.0.3", "1.0.4", False),
    ("=1.0", "1.0.0", True),  # missing numbers are zeros
    ("v1.0.3", "1.0.3", True),
    ("!= 1.2.0", "1.2.0", False),
    ("!= 1.2.0", "1.2.1", True),
    (">= 1.0, < 1.5", "1.0.3", True),  # a comma is "and"
    (">= 1.0, < 1.5", "1.11.4", False),
    ("> 1.0.3", "1.0.3", False),
    ("<= 1.9", "1.9.0", True),
    ("~> 1", "1.11.4", True),  # one number: go-version fixes none of them, so every 1.x and later
    ("~> 1", "2.3.0", True),
    ("~> 1", "0.15.5", False),
    ("~> 1.9", "1.11.4", True),  # two numbers: the minor may rise, the major may not
    ("~> 1.9", "2.0.0", False),
    ("~> 1.9", "1.8.9", False),
    ("~> 1.0.0", "1.0.3", True),  # three numbers: the patch may rise
    ("~> 1.0.0", "1.1.0", False),
    (">= 1.9", "1.12.0-beta1", False),  # a prerelease fits only a part naming one of the same release
    (">= 1.12.0-beta1", "1.12.0-beta2", True),
    (">= 1.11.0-beta1", "1.12.0-beta1", False),
    ("= 1.12.0-beta1", "1.12.0-beta1", True),
    ("~> 1.12.0-beta1", "1.12.0", False),  # go-version: a pessimistic prerelease holds prereleases only
    ("~> 1.12.0-alpha1", "1.12.0-rc1", True),
    (">= 1.0.3+build.7", "1.0.4", True),  # build metadata is not compared
])
def test_a_constraint_holds_as_terraform_reads_it(constraint, version, fits):
    assert parse_constraint(constraint).holds(parse_version(version)) is fits


@pytest.mark.parametrize("constraint, reason", [
    ("", "empty"),
    ("latest", "'latest' is not a version constraint (HashiCorp syntax"),
    ("~> 1.2.3.4", "'~> 1.2.3.4' is not a version constraint"),
    (">== 1.0", "'>== 1.0' is not a version constraint"),
    (">= 1.0,", "'' is not a version constraint"),
    ("^1.2", "'^1.2' is not a version constraint"),  # npm's caret is not HashiCorp's
    ("1.0.0-banana", "the prerelease 'banana' is not one tfbot can compare"),
    (">= 1" + ", >= 1" * 60, "longer than 200 characters"),
])
def test_a_constraint_tfbot_cannot_read_says_which_part_and_why(constraint, reason):
    with pytest.raises(ConstraintError) as caught:
        parse_constraint(constraint)
    assert reason in str(caught.value)


@pytest.mark.parametrize("version", ["1.9", "latest", "1.0.3,", "1.0.3-banana"])
def test_an_installed_version_is_exact(version):
    with pytest.raises(ConstraintError):
        parse_version(version)


@pytest.mark.parametrize("engine, constraints, chosen", [
    ("terraform", [], DEFAULT),  # nothing asked: the default binary
    ("terraform", ["~> 1.0.0"], OLD),
    ("terraform", ["1.0.3"], OLD),
    ("terraform", [">= 1.0"], DEFAULT),  # the default fits: kept, though nothing newer is installed either
    ("terraform", [">= 1.0", "< 1.10"], NINE),  # the default does not fit: the newest that does
    ("terraform", ["~> 1.9", "!= 1.11.4"], NINE),
    ("terraform", [">= 1.12.0-beta1"], BETA),  # named prerelease: picked
    ("terraform", ["> 1.11.4"], None),  # a stable constraint never takes the installed beta
    ("opentofu", [], TOFU),  # no default for OpenTofu: its newest
    ("opentofu", ["~> 1.7.0"], TOFU_OLD),
    ("opentofu", ["1.0.3"], None),  # Terraform 1.0.3 is installed, but not as OpenTofu
])
def test_the_choice_over_the_installed_versions(engine, constraints, chosen):
    found = choose(engine, [Constraint(c, f"source {i}") for i, c in enumerate(constraints)], SERVER)
    if chosen is None:
        assert isinstance(found, NoFit)
    else:
        assert found == chosen


def test_an_extra_binary_listed_at_the_default_version_does_not_replace_the_default():
    server = Binaries(DEFAULT, (Binary("terraform", "1.11.4", "/elsewhere/terraform"),))
    assert server.installed("terraform") == [DEFAULT] and choose("terraform", [Constraint("1.11.4", "x")], server) \
        == DEFAULT


@pytest.mark.parametrize("reported", ["", "1.11.4-acme.build"])
def test_a_default_whose_version_is_unknown_runs_only_projects_that_ask_for_nothing(reported):
    server = Binaries(Binary("terraform", reported, "terraform"), (OLD,))
    assert choose("terraform", [], server) == server.default
    assert choose("terraform", [Constraint(">= 1.4", "x")], server) == NoFit(
        "No installed Terraform fits `>= 1.4` (x): this server has Terraform 1.0.3. Nothing was run; change the "
        "constraint, or ask the server's admin to add a fitting version under terraform.binaries.")


def test_no_fit_names_the_engine_each_constraint_where_it_came_from_and_what_is_installed():
    found = choose_for_project("terraform", "~> 1.0", {"main.tf": 'terraform {\n  required_version = ">= 2.0"\n}\n'},
                               SERVER)
    assert found == NoFit(
        "No installed Terraform fits `~> 1.0` (the project's terraform_version) and `>= 2.0` (required_version in "
        "main.tf): this server has Terraform 1.0.3, 1.9.8, 1.11.4 and 1.12.0-beta1. Nothing was run; change the "
        "constraint, or ask the server's admin to add a fitting version under terraform.binaries.")
    nothing = choose("opentofu", [], Binaries(DEFAULT))
    assert nothing == NoFit(
        "This project runs with OpenTofu (engine: opentofu), and this server has no OpenTofu (tofu.binaries is "
        "empty). Nothing was run; ask the server's admin to add one under tofu.binaries, or choose another engine.")


def test_a_required_version_tfbot_cannot_compare_is_said_not_raised():
    found = choose_for_project("terraform", "", {"main.tf": 'terraform {\n  required_version = "^1.2"\n}\n'}, SERVER)
    assert isinstance(found, NoFit) and found.message.startswith("Required_version in main.tf `^1.2` cannot be read:")


def test_required_version_of_every_terraform_block_holds_and_an_override_replaces_them():
    files = {
        "main.tf": 'terraform {\n  required_version = ">= 1.0"\n  backend "local" {}\n}\n',
        "versions.tf": '# required_version = "ignored, a comment"\nterraform {\n  required_version = "< 1.10"\n}\n',
        "outputs.tf.json": '{"terraform": [{"required_version": "!= 1.9.7"}]}',
        "variables.tf": 'variable "x" {}\n',
        "README.md": 'terraform { required_version = "= 0.12.0" }',  # not a file Terraform loads
    }
    found = required_versions(files)
    assert found.problems == ()
    assert found.constraints == (Constraint(">= 1.0", "required_version in main.tf"),
                                 Constraint("!= 1.9.7", "required_version in outputs.tf.json"),
                                 Constraint("< 1.10", "required_version in versions.tf"))
    assert choose_for_project("terraform", "", files, SERVER) == NINE
    overridden = {**files, "z_override.tf": 'terraform {\n  required_version = "~> 1.0.0"\n}\n',
                  "override.tf": 'terraform {\n  required_version = ">= 1.11"\n}\n'}
    # Override files come after the others, in name order: the last one that sets it wins.
    assert required_versions(overridden).constraints == (Constraint("~> 1.0.0", "required_version in z_override.tf"),)
    assert choose_for_project("terraform", "", overridden, SERVER) == OLD


@pytest.mark.parametrize("text, problem", [
    ('terraform {\n  required_version = var.pinned\n}\n', "the required_version in main.tf is not a literal string"),
    ('terraform {\n  required_version = "${var.pinned}"\n}\n', "the required_version in main.tf is not a literal string"),
    ('terraform {\n  required_version = \n}\n', "main.tf cannot be parsed (line 2, column 22: unexpected token)"),
])
def test_an_unreadable_required_version_is_a_problem_naming_the_file(text, problem):
    found = required_versions({"main.tf": text})
    assert found.constraints == () and found.problems == (problem,)
    no_fit = choose_for_project("terraform", "", {"main.tf": text}, SERVER)
    assert isinstance(no_fit, NoFit) and problem in no_fit.message


def test_a_file_that_never_says_required_version_is_not_parsed():
    assert required_versions({"main.tf": "this is { not HCL"}) == required_versions({})


# -- reading a root's files from its working copy (PR code) ------------------------------------------------------

def test_only_regular_files_inside_the_checkout_are_read(tmp_path):
    checkout = tmp_path / "copy"
    root = checkout / "network"
    root.mkdir(parents=True)
    (checkout / ".git").write_text("gitdir: elsewhere\n")
    pinned = 'terraform {\n  required_version = "~> 1.0.0"\n}\n'
    (root / "main.tf").write_text(pinned)
    (checkout / "shared.tf").write_text(pinned.replace("~> 1.0.0", ">= 1.0"))
    (root / "shared.tf").symlink_to("../shared.tf")  # inside the checkout: read
    outside = tmp_path / "host.tf"
    outside.write_text(pinned.replace("~> 1.0.0", "= 0.1.0"))
    (root / "host.tf").symlink_to(outside)  # a file of the host: skipped, never read
    os.mkfifo(root / "pipe.tf")  # would block a reader forever
    (root / "dev.tf").symlink_to("/dev/zero")  # would never end
    (root / "notes.txt").write_text(pinned)
    files, problems = root_files(root)
    assert problems == [] and files == {"main.tf": pinned, "shared.tf": pinned.replace("~> 1.0.0", ">= 1.0")}


def test_a_huge_file_is_parsed_only_when_it_would_not_set_required_version(tmp_path):
    (tmp_path / ".git").write_text("gitdir: elsewhere\n")
    filler = "# " + "x" * 1000 + "\n"
    (tmp_path / "big.tf").write_text(filler * (MAX_FILE_BYTES // len(filler) + 10))
    assert root_files(tmp_path) == ({}, [])  # never mentions it: skipped, nothing held in memory
    with open(tmp_path / "big.tf", "a") as f:
        f.write('terraform {\n  required_version = ">= 1.0"\n}\n')
    files, problems = root_files(tmp_path)
    assert files == {} and problems == ["big.tf is larger than 4 MiB and sets required_version: tfbot does not parse "
                                        "a file that large"]


def test_the_comment_names_what_ran_each_project_and_nothing_when_unknown():
    from bot.models import Outcome, Project, ProjectResult
    from bot.render.comments import render_command_comment

    legacy, other = Project("acme/infra", "legacy", "legacy"), Project("acme/infra", "other", "other")
    body = render_command_comment("plan", [ProjectResult(legacy, Outcome.PLANNED, binary=OLD.label),
                                           ProjectResult(other, Outcome.PLANNED)], 7, "ab" * 20)
    assert "#### Planned: `legacy`\ndir `legacy` · workspace `default` · Terraform 1.0.3\n" in body
    assert "#### Planned: `other`\ndir `other` · workspace `default`\n" in body
    assert TOFU.label == "OpenTofu 1.8.5" and Binary("terraform", "", "terraform").label == "Terraform"
