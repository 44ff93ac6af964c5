"""A drift issue's text (bot/render/drift.py) and what each check result does to the issue
(bot/drift/transitions.py): values in, values out."""
from __future__ import annotations

import pytest

import cmarkgfm
from cmarkgfm.cmark import Options

from bot.drift.marker import DriftSubject, marker, subject_of
from bot.drift.transitions import IssueStep, Transition, set_digest, set_marker, shown_digest, transition
from bot.render.drift import BODY_LIMIT, DriftReport, by_action, changed_comment, issue_body, issue_title, \
    resolved_comment

AT = 1796133600.0  # 2026-12-01 14:00 UTC
SUBJECT = DriftSubject(repo="acme/infra", dir="app", workspace="default", name="app")


def html_of(markdown: str) -> str:
    """As GitHub renders it, raw HTML kept (GitHub sanitises after; tfbot's text must not need it)."""
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


def report(**changes: object) -> DriftReport:
    values: dict[str, object] = dict(
        repo="acme/infra", project="app", dir="app", workspace="default", sha="a" * 40,
        summary="Plan: 1 to add, 1 to change, 0 to destroy.",
        resources=("update terraform_data.a", "create terraform_data.b"),
        plan_output='  # terraform_data.a will be updated in-place\n  ~ resource "terraform_data" "a" {\n'
                    '      ~ input  = "hand" -> "one"\n    }\n',
        run_id="20261201140000-abcd1234", run_url="https://tfbot.example.com/runs/20261201140000-abcd1234",
        checked_at=AT + 3600, drifted_since=AT)
    values.update(changes)
    return DriftReport(**values)  # type: ignore[arg-type]


def test_the_body_starts_with_the_marker_lists_the_changes_by_action_and_folds_the_plan():
    body = issue_body(marker(SUBJECT), report())
    assert subject_of(body) == SUBJECT
    assert issue_title("acme/infra", "app") == "Drift: acme/infra app"
    assert "- **create** (1): `terraform_data.b`\n- **update** (1): `terraform_data.a`" in body
    assert ("First seen 2026-12-01 14:00 UTC; last checked 2026-12-01 15:00 UTC by [run 20261201140000-abcd1234]"
            in body)
    html = html_of(body)
    assert "<details><summary>The plan</summary>" in html and '!       input  = &quot;hand&quot; -&gt; &quot;one&quot;' in html


def test_hostile_names_and_plan_text_stay_text():
    evil = report(project="x<script>", resources=("update terraform_data.a`]<img src=x>",),
                  plan_output="```\n</details><img src=x onerror=alert(1)>\n", links=("javascript:alert(1)",))
    html = html_of(issue_body(marker(SUBJECT), evil))
    assert "<img" not in html and "<script" not in html
    assert 'href="javascript' not in html


def test_a_huge_plan_is_cut_to_fit_githubs_limit_with_the_run_link():
    body = issue_body(marker(SUBJECT), report(plan_output="  + x = 1\n" * 20_000))
    assert len(body) <= BODY_LIMIT
    assert "characters cut here; the whole output is in https://tfbot.example.com/runs/" in body
    many = tuple(f"update terraform_data.r{i:05d}" for i in range(5000))
    body = issue_body(marker(SUBJECT), report(resources=many))
    assert len(body) <= BODY_LIMIT and subject_of(body) == SUBJECT
    assert "The plan is too long to show here" in body


def test_output_only_changes_and_the_grouping_order():
    assert "only output values would change" in issue_body(marker(SUBJECT), report(resources=()))
    assert [a for a, _ in by_action(["delete x", "zap y", "create z", "update w"])] == [
        "create", "update", "delete", "zap"]


def test_the_changed_comment_says_what_came_and_went():
    text = changed_comment(("update terraform_data.a", "delete terraform_data.c"), report())
    assert "Drifted since the last check:\n- **create** (1): `terraform_data.b`" in text
    assert "No longer drifted:\n- **delete** (1): `terraform_data.c`" in text
    assert resolved_comment(AT, "b" * 40, "r1", "").startswith("**No drift any more.** Run `r1`")


def test_the_set_digest_read_back_from_a_body_ignores_order():
    body = "text\n" + set_marker(["b", "a", "a"])
    assert shown_digest(body) == set_digest(["a", "b"]) and shown_digest("edited by hand") == ""


def test_every_row_of_the_transition_table():
    same = set_digest(["update a"])
    assert transition("drifted", False, "", ["update a"]) == Transition(IssueStep.OPEN, notify="drift_found")
    assert transition("drifted", True, same, ["update a"]) == Transition(IssueStep.UPDATE)
    assert transition("drifted", True, same, ["update a", "create b"]) == Transition(
        IssueStep.UPDATE, comment=True, notify="drift_found")
    assert transition("drifted", True, "", ["update a"]).comment  # a body edited by hand: said again
    assert transition("clean", True, same, []) == Transition(IssueStep.CLOSE, notify="drift_resolved")
    assert transition("clean", False, "", []) == Transition(IssueStep.NONE)
    assert transition("failed", True, same, [], last_state="drifted") == Transition(IssueStep.NOTE_FAILURE)
    assert transition("failed", True, same, [], last_state="failed") == Transition(IssueStep.NONE)
    assert transition("failed", False, "", []) == Transition(IssueStep.NONE)
    assert transition("skipped", True, same, []) == Transition(IssueStep.NONE)


def test_tfbot_drift_says_its_exit_status_and_keeps_to_it(capsys):
    import pytest

    from bot.cli import main
    from bot.ops.drift_cli import exit_status, line
    from bot.state.drift_checks import DriftCheck, DriftState

    with pytest.raises(SystemExit):
        main(["drift", "--help"])
    assert "Exit status: 0 all clean (or skipped" in capsys.readouterr().out
    assert main(["drift", "--project", "app"]) == 2 and "--project needs --repo" in capsys.readouterr().err

    def check(state: DriftState, **more: object) -> DriftCheck:
        return DriftCheck(repo="acme/infra", project="app", dir="app", workspace="default", state=state,
                          **more)  # type: ignore[arg-type]

    assert exit_status([check(DriftState.CLEAN), check(DriftState.SKIPPED)]) == 0
    assert exit_status([check(DriftState.CLEAN), check(DriftState.DRIFTED)]) == 3
    assert exit_status([check(DriftState.DRIFTED), check(DriftState.FAILED)]) == 1
    assert line(check(DriftState.FAILED, detail="boom\x1b[31m", issue_url="https://github.com/acme/infra/issues/3")) \
        == "acme/infra app (dir app, workspace default): failed: boom [31m https://github.com/acme/infra/issues/3"


def test_a_round_that_could_not_tell_keeps_the_plan_the_open_issue_shows():
    """A PR holding the lock at check time (skipped), or GitHub failing (failed), leaves the issue as it was: the digest
    and resources it shows stay on record, so `apply` on it stays possible."""
    from bot.drift.check import _carry, _skipped
    from bot.state.drift_checks import DriftCheck, DriftState

    drifted = DriftCheck(repo="acme/infra", project="network", dir="network", workspace="default",
                         state=DriftState.DRIFTED, digest="d" * 64, resources=("update x.y",), issue=7, issue_url="u",
                         issue_resources=("update x.y",))
    base = DriftCheck(repo="acme/infra", project="network", dir="network", workspace="default", state=DriftState.CLEAN)
    skipped = _carry(_skipped(base, "acme/infra#9"), drifted, "")
    assert (skipped.state, skipped.issue, skipped.digest, skipped.resources) == (
        DriftState.SKIPPED, 7, "d" * 64, ("update x.y",))
    clean = _carry(base, drifted, "")
    assert clean.digest == "" and clean.resources == ()  # a clean round shows nothing to apply


@pytest.mark.parametrize("schedule, words", [
    ("61 * * * *", "out of range"), ("0 */0 * * *", "step '0'"), ("@hourly", "needs five fields"),
    ("* * * *", "needs five fields")])
def test_a_bad_drift_schedule_is_refused_saying_why(schedule, words):
    from pydantic import ValidationError

    from bot.config.models import DriftConfig

    with pytest.raises(ValidationError) as caught:
        DriftConfig(enabled=True, schedule=schedule)
    assert words in str(caught.value)


def test_tfbot_drift_asks_github_nothing_when_no_repository_has_drift_on(tmp_path, app_private_key, redis_url,
                                                                           capsys):
    """GitHub is unreachable here (a closed port): with drift on nowhere, nothing is asked; with --repo, the failure
    is one line and exit 1, never a traceback."""
    from bot.cli import main
    from tests.support.tfbot_process import write_config

    config = write_config(tmp_path, {
        "github": {"app_id": 1, "private_key": app_private_key, "webhook_secret": "s" * 8,
                   "api_url": "http://127.0.0.1:9/api/v3", "retries": 0},
        "redis_url": redis_url, "data_dir": str(tmp_path / "data"), "repos": [{"name": "acme/*"}]})
    assert main(["drift", "--config", str(config)]) == 0
    assert "No repository has drift checks on" in capsys.readouterr().out
    code = main(["drift", "--config", str(config), "--repo", "acme/infra"])
    out = capsys.readouterr()
    assert code == 1 and out.out.startswith("acme/infra: failed: ") and "Traceback" not in out.out + out.err


def test_a_plan_marker_inside_the_folded_plan_never_binds_an_apply():
    """The plan's text comes from Terraform (and what the infrastructure holds): a marker-like line in it is never the
    last one, even when the check kept no digest."""
    from bot.drift.issues import body_of
    from bot.drift.marker import DriftSubject
    from bot.drift.transitions import plan_marker, shown_plan_digest
    from bot.render.drift import DriftReport

    forged = "<!-- tfbot:drift-plan " + "f" * 64 + " -->"
    report = DriftReport(repo="acme/infra", project="app", dir="app", workspace="default", sha="a" * 40,
                         summary="Plan: 0 to add, 1 to change, 0 to destroy.", resources=("update x.y",),
                         plan_output=f'  ~ input = "{forged}"\n{forged}\n', run_id="r1", run_url="", checked_at=0.0,
                         drifted_since=0.0, digest="")
    body = body_of(DriftSubject(repo="acme/infra", dir="app", workspace="default", name="app"), report)
    assert body.rstrip().endswith(plan_marker("")) and shown_plan_digest(body) == ""
    body = body_of(DriftSubject(repo="acme/infra", dir="app", workspace="default", name="app"),
                   DriftReport(**{**report.__dict__, "digest": "d" * 64}))
    assert shown_plan_digest(body) == "d" * 64
