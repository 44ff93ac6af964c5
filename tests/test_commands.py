"""The comment parser: which comments are commands, which get help back, and which are ignored."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shlex
import unicodedata

from bot.lifecycle.commands import (
    HELP_TEXT,
    MAX_DIR_PART_BYTES,
    MAX_LINE,
    PROJECT_RE,
    WORKSPACE_RE,
    Command,
    Ignore,
    Reply,
    describe_flags,
    dir_problem,
    parse_comment,
)
from bot.models import validate_workspace

BOT = "tfbot-app[bot]"


def parse(body: str, author: str = "alice"):
    return parse_comment(body, author, BOT)


def assert_help_reply(result, *fragments: str) -> None:
    assert isinstance(result, Reply), result
    assert result.text.endswith(HELP_TEXT)
    for fragment in fragments:
        assert fragment in result.text


# -- commands ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, expected",
    [
        ("plan", Command("plan")),
        ("apply", Command("apply")),
        ("unlock", Command("unlock")),
        ("tfbot plan", Command("plan")),
        ("/plan", Command("plan")),
        ("/apply", Command("apply")),
        ("TFBOT APPLY", Command("apply")),
        ("/Plan", Command("plan")),
        ("tfbot unlock", Command("unlock")),
        ("plan -d network", Command("plan", dir="network")),
        ("plan --dir network", Command("plan", dir="network")),
        ("plan -d=network", Command("plan", dir="network")),
        ("plan --dir=network", Command("plan", dir="network")),
        ("plan -w staging", Command("plan", workspace="staging")),
        ("plan --workspace staging", Command("plan", workspace="staging")),
        ("plan --workspace=staging", Command("plan", workspace="staging")),
        ("plan -p network:staging", Command("plan", project="network:staging")),
        ("apply --project=envs/prod", Command("apply", project="envs/prod")),
        ("tfbot apply -d network -w staging", Command("apply", dir="network", workspace="staging")),
        ("/apply -w staging -d network", Command("apply", dir="network", workspace="staging")),
        ("unlock -d network", Command("unlock", dir="network")),
        ("plan -w my.ws_1-a", Command("plan", workspace="my.ws_1-a")),
        ("plan -d modules/vpc@v2+x", Command("plan", dir="modules/vpc@v2+x")),
    ],
)
def test_commands(body, expected):
    assert parse(body) == expected


@pytest.mark.parametrize(
    "raw, normalised",
    [
        ("network", "network"),
        ("./network/", "network"),
        ("./network", "network"),
        ("network/", "network"),
        ("envs//prod/./eu", "envs/prod/eu"),
        (".", "."),
        ("./", "."),
        ("./.", "."),
        ("...", "..."),  # a directory literally named '...' is not a parent reference
        ("a..b/c", "a..b/c"),
    ],
)
def test_dir_is_normalised_like_the_config(raw, normalised):
    assert parse(f"plan -d {raw}") == Command("plan", dir=normalised)


@pytest.mark.parametrize(
    "body",
    [
        "  plan  ",
        "\n\n  plan\n",
        "plan\r\n",
        "tfbot plan\r\nthanks, I reviewed the diff",
        "\tplan\t-d\tnetwork",
        "/plan  -d   network  ",
        "plan\nanything on later lines: apply; rm -rf / $(id) `whoami`",
    ],
)
def test_whitespace_and_later_lines_do_not_matter(body):
    assert isinstance(parse(body), Command)


def test_later_lines_are_not_parsed():
    assert parse("plan -d network\n-d ../etc") == Command("plan", dir="network")


# -- help ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["help", "tfbot help", "/help", "HELP", "help -x", "tfbot help me please"])
def test_help(body):
    assert parse(body) == Reply(HELP_TEXT)


def test_help_text_names_commands_flags_and_permissions():
    for word in ("plan", "apply", "unlock", "--project", "--dir", "--workspace", "-p", "-d", "-w", "read", "write",
                 "maintain", "admin"):
        assert word in HELP_TEXT


# -- ignored ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   \n\n\t",
        "LGTM",
        "plan looks good to me",
        "apply this please",
        "Apply when ready",
        "unlock it?",
        "help me understand this",
        "plan - looks fine",  # a lone dash is punctuation, not a flag
        "apply -- done",
        "plan -1 for this",
        "apply.",
        "apply!",
        "apply;",
        "apply; rm -rf /",
        "/apply; rm -rf /",
        "apply && curl evil",
        "`apply`",
        "$(apply)",
        "> plan",
        "```\nplan\n```",
        "planning to apply later",
        "tfbot's plan looks odd",
        "@tfbot plan",
        "/",
        "/ plan",
        "/lgtm",  # another bot's slash command
        "/assign @bob",
        "/аpply",  # Cyrillic а after a slash: not ours, like any unknown slash word
        "аpply",  # Cyrillic а
        "ａｐｐｌｙ",  # fullwidth
        "ＡＰＰＬＹ",
        "unloc\u212a",  # Kelvin sign: "\u212a".lower() == "k", must not become 'unlock'
        "pl\u0430n",
        "plan\u00a0-d network",  # no-break space is not a separator: one unknown token
        "plan\x00",
        "plan\u2028-d x",
        "plan\rmore",
    ],
)
def test_ignored(body):
    assert isinstance(parse(body), Ignore), repr(body)


@pytest.mark.parametrize("author", [BOT, BOT.upper(), "dependabot[bot]", "renovate[bot]", "github-actions[bot]"])
def test_bot_comments_are_ignored(author):
    assert isinstance(parse("tfbot apply", author=author), Ignore)


def test_bot_login_match_is_exact_not_a_prefix():
    assert parse("plan", author="tfbot-app") == Command("plan")


# -- replies with an error ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("tfbot", "which command"),
        ("tfbot apply; rm -rf /", "not a tfbot command"),
        ("tfbot аpply", "`?pply` is not a tfbot command"),  # prefixed, so clearly for us
        ("tfbot ａｐｐｌｙ", "`?????` is not a tfbot command"),
        ("tfbot " + "x" * 50, "`" + "x" * 40 + "`... is not"),
        ("tfbot apply.", "`apply.` is not a tfbot command"),
        ("tfbot destroy", "`destroy` is not a tfbot command"),
        ("tfbot plan please", "unexpected word `please`"),
        ("/plan please", "unexpected word `please`"),
        ("tfbot apply `id`", "unexpected word `?id?`"),
        ("tfbot plan $(id)", "unexpected word"),
        ("plan -x", "unknown flag `-x`"),
        ("plan --destroy", "unknown flag `--destroy`"),
        ("plan -P network", "unknown flag `-P`"),
        ("plan -target=aws_instance.x", "unknown flag `-target`"),
        ("plan -d", "-d needs a value"),
        ("plan -d=", "-d needs a value"),
        ("plan --workspace", "--workspace needs a value"),
        ("plan -d a -d b", "-d was given twice"),
        ("plan -d a --dir b", "--dir was given twice"),
        ("plan -d network extra", "unexpected word `extra`"),
        ("plan -p net -d net", "not both"),
        ("plan -w prod -p net", "not both"),
    ],
)
def test_errors_get_help_back(body, fragment):
    assert_help_reply(parse(body), fragment)


@pytest.mark.parametrize(
    "value",
    [
        "/etc",
        "/",
        "..",
        "../secrets",
        "network/../../etc",
        "a/..",
        "a\\..\\b",
        "C:\\terraform",
        "net work",  # unquoted: 'work' is an extra word, with or without =
        "-w",
        "--foo",
        "net\x00work",
        "net\x1bwork",
        "net\twork",
        "a" * 256,
        "'net work",  # a quote never closed
        "\"net work",
        "'net\x1bwork'",  # quoting does not let control characters in
        "'net\x7fwork'",
        "'a\u202eb'",  # right-to-left override: would hide what the name says when quoted back
        "'a\u200bb'",  # zero-width space
        "'a\u2028b'",  # line separator
        "'../etc'",  # quoting changes nothing about where a path leads
        "\"a/../../b\"",
        "'/etc'",
        "'-w'",
        "''",
        "a\\b",  # backslash: a Windows separator typed by mistake, never an escape
        "'é" + "a" * 254 + "'",  # 256 bytes in one name
    ],
)
def test_bad_dirs_are_refused(value):
    assert_help_reply(parse(f"plan -d {value}"))
    assert_help_reply(parse(f"plan --dir={value}"))


def test_longest_dir_is_accepted():
    assert parse("plan -d " + "a" * 255) == Command("plan", dir="a" * 255)
    assert parse("plan -d " + "a/" * 300 + "b") == Command("plan", dir="a/" * 300 + "b")  # long paths are fine


@pytest.mark.parametrize(
    "body, dir_",
    [
        ('plan -d "core net"', "core net"),
        ("plan -d 'core net'", "core net"),
        ("plan --dir 'core net'", "core net"),
        ("plan --dir='core net'", "core net"),
        ("plan -d='core net'", "core net"),
        ('plan --dir="core net"', "core net"),
        ("plan -d core' 'net", "core net"),  # quoted parts join, as in a shell
        ("tfbot apply -d 'envs/core net/eu' -w staging", "envs/core net/eu"),
        ("/unlock -d './core net/'", "core net"),
        ("plan -d '  two  spaces  '", "  two  spaces  "),
        ("plan -d \"it's\"", "it's"),
        ("plan -d 'say \"hi\"'", 'say "hi"'),
        ("plan -d 'it'\"'\"'s \"x\"'", "it's \"x\""),
        ("plan -d '#team'", "#team"),  # '#' starts no comment
        ("plan -d #team", "#team"),
        ("plan -d ./-weird", "-weird"),  # a name starting with '-' cannot be mistaken for a flag this way
        ("plan -d 'a\u00a0b'", "a\u00a0b"),  # no-break space is an ordinary character of a name
    ],
)
def test_dirs_with_spaces_and_quotes_are_addressable(body, dir_):
    result = parse(body)
    assert isinstance(result, Command) and result.dir == dir_, result


@pytest.mark.parametrize("value", ["net;rm", "$(id)", "`id`", "nét", "~/x", "a b&c|d", "${HOME}", "*", "x>y", "'"])
def test_odd_names_git_allows_are_taken_literally(value):
    """Nothing is expanded or run: a name is only ever compared with the repository's project dirs."""
    assert parse(f"plan -d {shlex.quote(value)}") == Command("plan", dir=value)


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("plan -d 'core net", "a quote is not closed"),
        ('tfbot plan -d "core net', "a quote is not closed"),
        ("plan -d core net", "unexpected word `net`"),
        ("plan -d ''", "-d needs a value"),
        ("plan -d 'a\u202eb'", "invisible formatting"),
        ("plan -d a\\b", "backslash"),
        ("plan -d -weird", "./-name"),
    ],
)
def test_dir_quoting_mistakes_are_explained(body, fragment):
    assert_help_reply(parse(body), fragment)


def test_help_explains_quoting():
    assert "-d \"core net\"" in HELP_TEXT and "-d 'core net'" in HELP_TEXT and "./-name" in HELP_TEXT


@pytest.mark.parametrize(
    "cmd, shown",
    [
        (Command("plan", dir="core net"), "`-d 'core net'`"),
        (Command("plan", dir="network", workspace="prod"), "`-d network -w prod`"),
        (Command("plan", dir="@org/team [x](http://e)"), "`-d '@org/team [x](http://e)'`"),  # code span: inert
        (Command("plan", dir="a`b"), "`-d 'a?b'`"),  # a backtick would end the code span
        (Command("plan"), "(no flags)"),
    ],
)
def test_flags_are_quoted_back_inert_and_pasteable(cmd, shown):
    assert describe_flags(cmd) == shown


@pytest.mark.parametrize(
    "value",
    [".", "..", "...", "prod/eu", "prod eu", "-prod", "prod\x0bx", "prod$", "a" * 91, "prod:eu", "prod@1", "ｐｒｏｄ", "=", "prod=1"],
)
def test_bad_workspaces_are_refused(value):
    assert_help_reply(parse(f"plan --workspace={value}"))


def test_longest_workspace_is_accepted():
    assert parse("plan -w " + "w" * 90) == Command("plan", workspace="w" * 90)


@pytest.mark.parametrize("value", ["..", "../x", "a/../b", "-x", "net work", "a" * 101, "a;b", "a\\b", "ｐ"])
def test_bad_projects_are_refused(value):
    assert_help_reply(parse(f"plan --project={value}"))


@pytest.mark.parametrize(
    "body, shown",
    [
        ("tfbot plan <img", "`?img`"),
        ("tfbot plan [link](http://evil)", "`?link??http://evil?`"),
        ("tfbot plan `x`@bob", "`?x?@bob`"),
        ("plan -x`rm`", "`-x?rm?`"),
        ("tfbot <b>apply</b>", "`?b?apply?/b?`"),
        ("tfbot plan _*bold*_", "`_?bold?_`"),
    ],
)
def test_replies_quote_user_text_defanged(body, shown):
    assert_help_reply(parse(body), shown)


# -- long comments -----------------------------------------------------------------------------------


def test_command_with_a_long_second_line_is_fine():
    assert parse("tfbot plan\n" + "x" * 10_000) == Command("plan")


def test_too_long_first_line_addressed_to_us_gets_a_reply():
    assert_help_reply(parse("tfbot plan " + "x" * 10_000), f"longer than {MAX_LINE}")
    assert_help_reply(parse("plan -d " + "a" * 10_000), f"longer than {MAX_LINE}")


def test_too_long_first_line_of_conversation_is_ignored():
    assert isinstance(parse("I think the plan " + "blah " * 2_000), Ignore)
    assert isinstance(parse("plan " + "looks good " * 1_000), Ignore)


def test_first_line_just_under_the_limit_is_read():
    line = "plan -d " + "a" * 200 + " " * (MAX_LINE - 208)
    assert len(line) == MAX_LINE
    assert parse(line + "\nmore") == Command("plan", dir="a" * 200)


# -- properties ---------------------------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "plan", "apply", "unlock", "help", "tfbot", "/plan", "/apply", "-p", "-d", "-w", "--project", "--dir",
        "--workspace", "-d=", "--dir=", "-w=", "-p=", "..", ".", "./", "/", "/etc", "a", "net", "prod", "-", "--",
        "\\", "\x00", "\r", "\n", " ", "\t", "\u212a", "а", "=", ";", "$(", "`", "a/../b", "-x",
        "'", '"', "'a b'", '"../x"', "'-w'", "#", "\u202e",
    ]
)
_TOKEN = st.one_of(_PIECES, st.text(max_size=12))
_FLAG = st.sampled_from(["-p", "-d", "-w", "--project", "--dir", "--workspace", "-x", "--dir="])
_VALUE = st.one_of(
    st.sampled_from(["..", ".", "./a/", "a/..", "/etc", "-w", "a:b", "a b", "a//b", "a/./b", "a/../b", "../", "x",
                     "'a b'", '"a/../b"', "'..'", "'a\x1bb'", "'\u202e'", "'unclosed", "a'b'c", "'-x'"]),
    st.lists(st.sampled_from(["a", ".", "..", "/", "-", "_", ":", "@", "+", "\\", "é", "\x00"]), max_size=8)
    .map("".join),
)


def _attempt(prefix: str, word: str, pairs: list[tuple[str, str]]) -> str:
    return prefix + word + "".join(f" {flag}{'' if flag.endswith('=') else ' '}{value}" for flag, value in pairs)


# Structured attempts reach the flag validators far more often than random text does.
_ATTEMPT = st.builds(
    _attempt,
    st.sampled_from(["", "tfbot ", "/"]),
    st.sampled_from(["plan", "apply", "unlock"]),
    st.lists(st.tuples(_FLAG, _VALUE), max_size=3),
)
_COMMENT = st.one_of(
    _ATTEMPT,
    st.text(max_size=300),
    st.lists(_TOKEN, max_size=12).map(" ".join),
    st.lists(_TOKEN, max_size=12).map("".join),
)


def _assert_allowlisted(command: Command) -> None:
    assert command.name in ("plan", "apply", "unlock")
    if command.dir is not None:
        assert not command.dir.startswith("/") and "\\" not in command.dir
        assert not any(unicodedata.category(c)[0] == "C" or c in "\u2028\u2029" for c in command.dir)
        parts = command.dir.split("/")
        assert ".." not in parts and "" not in parts
        assert command.dir == "." or "." not in parts
        assert all(len(p.encode()) <= MAX_DIR_PART_BYTES for p in parts)
    if command.workspace is not None:
        assert WORKSPACE_RE.match(command.workspace) and not command.workspace.startswith("-")
        assert validate_workspace(command.workspace) == command.workspace  # what the runner will accept
    if command.project is not None:
        assert PROJECT_RE.match(command.project) and not command.project.startswith("-")
        assert ".." not in command.project.split("/")
    assert command.project is None or (command.dir is None and command.workspace is None)


@settings(max_examples=1000, deadline=None)
@given(body=_COMMENT, author=st.one_of(st.just("alice"), st.text(max_size=20)))
def test_never_raises_and_commands_are_allowlisted(body, author):
    result = parse_comment(body, author, BOT)
    assert isinstance(result, (Command, Reply, Ignore))
    if isinstance(result, Command):
        _assert_allowlisted(result)
        assert not author.lower().endswith("[bot]")
    if isinstance(result, Reply):
        assert result.text.endswith(HELP_TEXT)


_NAME = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.]{0,20}\Z")


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["plan", "apply", "unlock"]),
    prefix=st.sampled_from(["", "tfbot ", "/", "TfBot "]),
    dir_=st.one_of(st.none(), st.lists(_NAME, min_size=1, max_size=4).map("/".join)),
    workspace=st.one_of(st.none(), _NAME),
    long_flags=st.booleans(),
    equals=st.booleans(),
)
def test_valid_commands_round_trip(name, prefix, dir_, workspace, long_flags, equals):
    flags = []
    for short, long_, value in (("-d", "--dir", dir_), ("-w", "--workspace", workspace)):
        if value is not None:
            flag = long_ if long_flags else short
            flags.append(f"{flag}={value}" if equals else f"{flag} {value}")
    body = f"{prefix}{name.upper() if prefix == 'TfBot ' else name} {' '.join(flags)}".rstrip()
    assert parse(body) == Command(name, dir=dir_, workspace=workspace)


# Any file name git can hold (no '/' or NUL) that is free of control and invisible formatting characters.
_GIT_NAME = st.text(
    st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"), blacklist_characters="/\\"),
    min_size=1, max_size=20,
).filter(lambda n: n not in (".", "..") and len(n.encode()) <= MAX_DIR_PART_BYTES)


@settings(max_examples=500, deadline=None)
@given(parts=st.lists(_GIT_NAME, min_size=1, max_size=3), long_flag=st.booleans(), equals=st.booleans())
def test_every_git_dir_name_is_addressable_when_quoted(parts, long_flag, equals):
    dir_ = "/".join(parts)
    typed = shlex.quote(dir_) if not dir_.startswith("-") else shlex.quote("./" + dir_)
    flag = "--dir" if long_flag else "-d"
    body = f"plan {flag}={typed}" if equals else f"plan {flag} {typed}"
    assert parse(body) == Command("plan", dir=dir_)
    assert dir_problem(dir_) is None or dir_.startswith("-")


# -- extra arguments after `--` (checked against the server's allowlist later, in bot/lifecycle/extra_args.py) ---

@pytest.mark.parametrize(
    "body, expected",
    [
        ("plan -- -target=terraform_data.a", Command("plan", extra_args=("-target=terraform_data.a",))),
        ("tfbot plan -d network -- -target=a -var=x=1",
         Command("plan", dir="network", extra_args=("-target=a", "-var=x=1"))),
        ("/plan -p net -- -destroy", Command("plan", project="net", extra_args=("-destroy",))),
        ("plan -- -var 'name=core net' -var='tags=[\"a\", \"b\"]'",
         Command("plan", extra_args=("-var", "name=core net", '-var=tags=["a", "b"]'))),
        ("plan -- -var='x=$(id)' -target=`a`", Command("plan", extra_args=("-var=x=$(id)", "-target=`a`"))),
        ("plan -d 'core net' -- -target=a", Command("plan", dir="core net", extra_args=("-target=a",))),
        ("plan -- -target=a -- -out=x", Command("plan", extra_args=("-target=a", "--", "-out=x"))),  # first `--` only
        ("tfbot plan -- hello", Command("plan", extra_args=("hello",))),  # addressed to us: the policy refuses it
        ("plan\n-- -target=a", Command("plan")),  # only the first line counts
    ],
)
def test_words_after_a_standalone_double_dash_are_extra_arguments(body, expected):
    assert parse(body) == expected


@pytest.mark.parametrize("body", ["apply -- done", "plan -- sounds good", "plan --", "unlock -- later maybe"])
def test_a_double_dash_in_conversation_is_still_conversation(body):
    assert isinstance(parse(body), Ignore)


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("apply -- -target=a", "it applies the saved plan exactly as it was reviewed"),
        ("tfbot apply -d network -- -target=a", "Comment `plan -- ARGUMENTS` first"),
        ("/unlock -- -target=a", "`unlock` takes no extra arguments"),
        ("tfbot plan --", "`--` must be followed by the extra arguments"),
        ("tfbot plan -- -var 'x=1", "a quote is not closed"),
        ("plan -- " + " ".join(["-target=a"] * 21), "at most 20 extra arguments may follow `--` (21 were given)"),
    ],
)
def test_extra_argument_mistakes_get_help_back(body, fragment):
    assert_help_reply(parse(body), fragment)


def test_twenty_extra_arguments_are_read():
    assert parse("plan -- " + " ".join(["-target=a"] * 20)).extra_args == ("-target=a",) * 20


def test_help_documents_extra_arguments():
    assert "after `--`" in HELP_TEXT and "`-destroy`" in HELP_TEXT and "`apply` applies exactly that plan" in HELP_TEXT
