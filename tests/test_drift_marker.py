"""The drift issue's hidden marker: written and read back, never forged by text further down."""
from __future__ import annotations

from bot.drift.marker import DriftSubject, marker, subject_of

NET = DriftSubject(repo="acme/infra", dir="network", workspace="default", name="network")


def test_a_marker_reads_back_as_the_project_it_names():
    assert subject_of(marker(NET) + "\n\n## Drift in network\n") == NET


def test_a_dir_that_looks_like_the_end_of_a_comment_cannot_close_it_early():
    odd = DriftSubject(repo="acme/infra", dir="a-->b}", workspace="dev", name="odd -->")
    line = marker(odd)
    assert line.count("-->") == 1 and line.endswith("-->")
    assert subject_of(line) == odd


def test_only_the_first_line_counts_and_other_text_names_nothing():
    assert subject_of("Some issue\n" + marker(NET)) is None
    assert subject_of("") is None and subject_of(None) is None
    assert subject_of("<!-- tfbot:drift project={not json} -->") is None
    assert subject_of('<!-- tfbot:drift project={"repo":"a/b"} -->') is None  # fields missing
