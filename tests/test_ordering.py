"""The order of applies as values: what waits for what, what starts next, what is left out, and how the comment
says it. Config validation of `depends_on` too."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.config.models import RepoConfig
from bot.lifecycle.ordering import describe, next_steps, one_at_a_time, ordered, stages, waits
from bot.models import Outcome, Project


def p(name: str, *depends_on: str, group: int = 0) -> Project:
    return Project(repo="acme/infra", name=name, dir=name, depends_on=depends_on, execution_order_group=group)


NET, DNS, APP = p("network"), p("dns", "network"), p("app", "dns", group=1)
OTHER = p("other", group=1)


def ids(*projects: Project) -> frozenset[str]:
    return frozenset(x.id for x in projects)


def test_a_project_waits_for_what_it_names_and_for_every_lower_group():
    order = waits([NET, DNS, APP, OTHER])
    assert order[NET.id] == frozenset() and order[DNS.id] == ids(NET)
    assert order[APP.id] == ids(NET, DNS) and order[OTHER.id] == ids(NET, DNS)
    assert waits([DNS]) == {DNS.id: frozenset()}  # its dependency is not part of this apply: nothing to wait for
    assert not ordered([DNS]) and not ordered([p("a"), p("b")]) and ordered([NET, DNS])


def test_each_project_starts_once_what_it_waits_for_applied():
    order = waits([NET, DNS, APP])
    assert next_steps(order, set(), {}) == ([NET.id], {})
    assert next_steps(order, {NET.id}, {}) == ([], {})  # started, not finished: dns waits
    assert next_steps(order, {NET.id}, {NET.id: Outcome.APPLIED}) == ([DNS.id], {})
    assert next_steps(order, {NET.id, DNS.id}, {NET.id: Outcome.APPLIED, DNS.id: Outcome.NOTHING_TO_APPLY}) == \
        ([APP.id], {})


@pytest.mark.parametrize("outcome", [Outcome.APPLY_FAILED, Outcome.REFUSED, Outcome.STALE, Outcome.LOCKED,
                                     Outcome.ERROR, Outcome.NOT_APPLIED])
def test_what_waits_for_a_project_that_did_not_apply_is_left_out_in_turn(outcome):
    # app waits for network too (a lower group): both are left out at once.
    assert next_steps(waits([NET, DNS, APP]), {NET.id}, {NET.id: outcome}) == ([], {DNS.id: NET.id, APP.id: NET.id})
    # A chain in one group: web waits only for dns, so it is left out once dns is reported as not applied.
    web = p("web", "dns")
    order = waits([NET, DNS, web])
    assert next_steps(order, {NET.id}, {NET.id: outcome}) == ([], {DNS.id: NET.id})
    assert next_steps(order, {NET.id, DNS.id}, {NET.id: outcome, DNS.id: Outcome.NOT_APPLIED}) == \
        ([], {web.id: DNS.id})


def test_one_at_a_time_runs_each_project_after_the_one_before_it_whatever_it_did():
    zone = p("zone")
    everything = [APP, OTHER, DNS, NET, zone]
    after = one_at_a_time(everything)
    # In the apply order, by name within a stage: network and zone, then dns, then app and other (group 1).
    assert after == {NET.id: frozenset(), zone.id: ids(NET), DNS.id: ids(zone), APP.id: ids(DNS),
                     OTHER.id: ids(APP)}
    plans = {x.id: frozenset[str]() for x in everything}  # plans wait for nothing but their turn
    assert next_steps(plans, set(), {}, after) == ([NET.id], {})
    assert next_steps(plans, {NET.id}, {}, after) == ([], {})  # network still running: zone waits its turn
    # network failed: the plan after it still runs (one at a time is not a dependency).
    assert next_steps(plans, {NET.id}, {NET.id: Outcome.PLAN_FAILED}, after) == ([zone.id], {})
    # In an apply, a real dependency still leaves its dependents out, and the turn passes to zone.
    assert next_steps(waits(everything), {NET.id}, {NET.id: Outcome.APPLY_FAILED}, after) == \
        ([zone.id], {DNS.id: NET.id, APP.id: NET.id, OTHER.id: NET.id})


def test_the_comment_names_the_order():
    assert [[x.name for x in stage] for stage in stages([APP, OTHER, DNS, NET])] == \
        [["network"], ["dns"], ["app", "other"]]
    assert describe([NET, DNS, APP, OTHER]) == ("Applied in order: `network`, then `dns`, then `app` and `other`; "
                                                "a project is applied only after what it depends on.")
    assert describe([p("a"), p("b")]) == ""


@pytest.mark.parametrize("projects, reason", [
    ([{"dir": "a", "depends_on": "b"}], "projects[0].depends_on: no project is named 'b'"),
    ([{"dir": "a", "depends_on": ["a"]}], "projects[0].depends_on: a project cannot depend on itself"),
    ([{"dir": "a", "depends_on": ["b"]}, {"dir": "b", "depends_on": ["a"]}],
     "projects[0].depends_on: a cycle: a -> b -> a"),
    ([{"dir": "a", "depends_on": ["b"]}, {"dir": "b", "execution_order_group": 2}],
     "projects[0].depends_on: 'b' is in a later execution_order_group (2 > 0): it could never apply first"),
])
def test_dependencies_that_could_never_be_met_stop_the_config(projects, reason):
    with pytest.raises(ValidationError) as caught:
        RepoConfig(name="acme/*", projects=projects)
    assert reason in str(caught.value)


def test_a_project_chosen_alone_is_held_back_by_an_unapplied_dependency_of_the_same_pr():
    from bot.lifecycle.ordering import held_back

    assert list(held_back([DNS], [NET, DNS], applied=set())) == [DNS.id]
    assert "apply `network` first, or comment `apply` without `-p`" in held_back([DNS], [NET, DNS], set())[DNS.id]
    assert held_back([DNS], [NET, DNS], applied={NET.id}) == {}  # applied already: dns may go
    assert held_back([NET, DNS], [NET, DNS], applied=set()) == {}  # both chosen: the apply orders them
    assert held_back([DNS], [DNS], applied=set()) == {}  # network is not this PR's: nothing to wait for
