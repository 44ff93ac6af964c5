"""Extra arguments for `plan` (`plan -- -target=...`): the repository's allowlist over a comment's words, the
`-var-file` rule, which entries a server config may hold, and the adapter's last check. Pure, values in and out."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.config.models import RepoConfig
from bot.lifecycle.extra_args import ExtraArgsRefused, allowed_args, var_file_problem
from bot.plan_args import DEFAULT_ALLOWED, entry_problem, is_destroy, known_option, parsed, shown

DEFAULT = list(DEFAULT_ALLOWED)


@pytest.mark.parametrize("words, expected", [
    (["-target=terraform_data.a"], ("-target=terraform_data.a",)),
    (["-target", "terraform_data.a"], ("-target=terraform_data.a",)),  # normalised to one argv item
    (["-var", "x=1", "-var=y=2"], ("-var=x=1", "-var=y=2")),
    (["-var=tags=[\"a\", \"b\"]"], ("-var=tags=[\"a\", \"b\"]",)),
    (["-replace=module.db.aws_instance.x[0]"], ("-replace=module.db.aws_instance.x[0]",)),
    (["-var-file=envs/staging.tfvars"], ("-var-file=envs/staging.tfvars",)),
    (["-var-file=../shared.tfvars"], ("-var-file=../shared.tfvars",)),  # inside the repository from `network`
    (["-refresh=false"], ("-refresh=false",)),
    (["-destroy"], ("-destroy",)),
    (["-destroy=false", "-target=a"], ("-destroy=false", "-target=a")),
])
def test_allowed_arguments_become_argv_items(words, expected):
    assert allowed_args(words, DEFAULT) == expected


@pytest.mark.parametrize("words, fragments", [
    (["-out=/tmp/x"], ["`-out`", "is not an option tfbot passes", "This server allows: `-target`"]),
    (["-chdir=.."], ["`-chdir`", "This server allows"]),
    (["-state=/etc/passwd"], ["`-state`"]),
    (["-lock=false"], ["`-lock=false` is not allowed here", "`-refresh=false`"]),  # known, not allowed
    (["-refresh=true"], ["`-refresh=true` is not allowed here"]),  # only the exact token is
    (["-parallelism=1"], ["`-parallelism=1` is not allowed here"]),
    (["hello"], ["unexpected word `hello`", "each starting with `-`"]),
    (["-target", "a", "extra"], ["unexpected word `extra`"]),
    (["--target=a"], ["one dash"]),
    (["-"], ["unexpected word"]),
    (["-target"], ["`-target` needs a value"]),
    (["-target="], ["`-target` needs a value"]),
    (["-target", "-destroy"], ["`-target` needs a value"]),  # the next option is never taken as the value
    (["-destroy=yes"], ["`-destroy` is a switch"]),
    (["-var-file=/etc/passwd"], ["must be a path relative to the project's directory"]),
    (["-var-file=~/secrets.tfvars"], ["must be a path relative"]),
    (["-var-file=a\\b.tfvars"], ["separate directories with `/`"]),
    (["-var=x=\u202eevil"], ["control or invisible formatting character"]),
    (["-target", "a\x1b[31m"], ["control or invisible formatting character"]),
    (["-out=<img src=x onerror=alert(1)>"], ["`-out`"]),
])
def test_refused_arguments_say_which_and_why(words, fragments):
    with pytest.raises(ExtraArgsRefused) as refused:
        allowed_args(words, DEFAULT)
    for fragment in fragments:
        assert fragment in str(refused.value)


def test_user_text_is_echoed_defanged():
    with pytest.raises(ExtraArgsRefused) as refused:
        allowed_args(["<script>alert(1)</script>"], DEFAULT)
    text = str(refused.value)
    assert "<" not in text and ">" not in text and "`?script?alert?1??/script?`" in text


def test_an_empty_allowlist_turns_extra_arguments_off():
    with pytest.raises(ExtraArgsRefused, match="takes no extra arguments"):
        allowed_args(["-target=a"], [])


def test_an_exact_entry_allows_only_that_argument():
    allowlist = ["-var-file=prod.tfvars", "-lock=false"]
    assert allowed_args(["-var-file", "prod.tfvars", "-lock=false"], allowlist) == ("-var-file=prod.tfvars",
                                                                                    "-lock=false")
    for words in (["-var-file=dev.tfvars"], ["-lock"], ["-target=a"]):
        with pytest.raises(ExtraArgsRefused, match="not allowed here"):
            allowed_args(words, allowlist)


@pytest.mark.parametrize("path, project_dir, escapes", [
    ("envs/x.tfvars", "network", False),
    ("../shared.tfvars", "network", False),
    ("../../x.tfvars", "network", True),
    ("../x.tfvars", ".", True),
    ("a/../../x.tfvars", ".", True),
    ("a/../b.tfvars", ".", False),
    ("../../../etc/passwd", "a/b", True),
    ("../../c.tfvars", "a/b", False),
])
def test_a_var_file_stays_inside_the_repository_from_the_project_dir(path, project_dir, escapes):
    problem = var_file_problem(("-target=a", f"-var-file={path}"), project_dir)
    assert (problem is not None) == escapes, problem
    if escapes:
        assert "leads outside the repository" in problem and f"`{project_dir}`" in problem


def test_destroy_plans_and_the_shown_form():
    assert is_destroy(["-target=a", "-destroy"]) and is_destroy(["-destroy=true"])
    assert not is_destroy(["-destroy=false"]) and not is_destroy(["-var=destroy=1"])
    args = ["-var=name=core net", "-target=a[\"x\"]", "-destroy"]
    assert shown(args) == "'-var=name=core net' '-target=a[\"x\"]' -destroy"
    assert parsed(shown(args)) == args and shown([]) == "" and parsed("") == []


# -- the server's allowlist ---------------------------------------------------------------------------

def test_the_default_allowlist():
    assert RepoConfig(name="acme/infra").extra_args == ("-target", "-replace", "-var", "-var-file", "-refresh=false",
                                                        "-destroy")
    assert RepoConfig(name="acme/infra", extra_args=[]).extra_args == ()


@pytest.mark.parametrize("entry, reason", [
    ("-out", "tfbot saves the plan file itself"),
    ("-chdir", "tfbot runs Terraform in the project's directory"),
    ("-state", "the state is the backend's"),
    ("-json", "tfbot reads Terraform's own output"),
    ("-input", "tfbot never waits for input"),
    ("-input=true", "tfbot never waits for input"),
    ("-detailed-exitcode", "tfbot reads the exit code itself"),
    ("-generate-config-out", "it writes files into the checkout"),
    ("-no-color", "tfbot sets it itself"),
    ("-frobnicate", "not a `terraform plan` option tfbot knows"),
    ("--target", "write it with one dash"),
    ("target", "write it with one dash"),
    ("-destroy=maybe", "its value is true or false"),
    ("-target=", "give a value after `=`"),
    ("-var-file=/etc/secrets.tfvars", "-var-file must be a path relative"),
])
def test_config_entries_that_cannot_be_allowed_stop_loading_with_key_and_reason(entry, reason):
    assert reason in (entry_problem(entry) or "")
    with pytest.raises(ValidationError) as error:
        RepoConfig(name="acme/infra", extra_args=["-target", entry])
    (problem,) = error.value.errors()
    assert problem["loc"] == ("extra_args", 1) and reason in problem["msg"]


@pytest.mark.parametrize("entry", ["-target", "-lock=false", "-parallelism", "-lock-timeout=30s", "-refresh-only",
                                   "-compact-warnings", "-var-file=envs/prod.tfvars", "-var=env=prod"])
def test_config_entries_naming_known_plan_options_load(entry):
    assert entry_problem(entry) is None
    assert RepoConfig(name="acme/infra", extra_args=[entry]).extra_args == (entry,)


@pytest.mark.parametrize("arg, known", [
    ("-target=a", True), ("-destroy", True), ("-destroy=false", True), ("-var=x=1", True),
    ("-target", False), ("-out=/tmp/x", False), ("-chdir=..", False), ("-destroy=yes", False), ("x", False),
    ("-input=true", False), ("-detailed-exitcode", False),
])
def test_the_adapter_knows_the_same_options(arg, known):
    assert known_option(arg) is known


def test_var_values_are_shown_only_on_the_pr():
    from bot.plan_args import public

    assert public(["-target=terraform_data.a", "-var=db_password=hunter2", "-var=x==y", "-var-file=prod.tfvars"]) == \
        ["-target=terraform_data.a", "-var=db_password=***", "-var=x=***", "-var-file=prod.tfvars"]
