"""alerts/digest.py: the alert sensor's saved state and the rate rule (at most MAX_POSTS_PER_MINUTE posts in
any 60 s, the last post of a tick carrying all the rest)."""

import pytest

from imageflow_dagster.alerts.digest import (
    MAX_NAMED,
    MAX_POSTS_PER_MINUTE,
    MAX_QUEUED,
    WINDOW_S,
    AlertState,
    budget,
    plan,
    sent,
    tried,
)


def _failed(n: int) -> dict:
    return {"job": f"job_{n}", "tenant": "t1", "workflow": "wf_1", "error": f"error {n}"}


def _state(failed_jobs: int, *notices: str) -> AlertState:
    state = AlertState()
    for n in range(failed_jobs):
        state.queue(_failed(n))
    for notice in notices:
        state.notify(notice)
    return state


def test_the_state_reads_back_what_it_saved():
    state = _state(2, "quota exhausted")
    state.after, state.posts, state.quota_since = {"RUN_FAILURE": 41}, [10.5], 9.0
    assert AlertState.parse(state.dump()) == state


@pytest.mark.parametrize("raw", [None, "", "{oops", "[1]", '{"after": {}, "unknown_field": 1}'])
def test_an_unreadable_or_older_state_starts_over_without_breaking_the_sensor(raw):
    state = AlertState.parse(raw)
    assert state.queued == [] and state.after == {} and not state.started


def test_few_failures_get_one_post_each_notices_first():
    posts = plan(_state(2, "quota exhausted"), now=100.0)
    assert [p.text.splitlines()[0] for p in posts] == [
        "quota exhausted",
        "imageflow: job job_0 failed",
        "imageflow: job job_1 failed",
    ]
    assert posts[1].text == "imageflow: job job_0 failed\ntenant: t1 · workflow: wf_1\nerror: error 0"


def test_more_failures_than_posts_left_end_in_one_digest_of_the_rest():
    state = _state(12, "quota exhausted")
    posts = plan(state, now=100.0)
    assert len(posts) == MAX_POSTS_PER_MINUTE
    digest = posts[-1]
    assert [item["job"] for item in digest.items] == ["job_8", "job_9", "job_10", "job_11"]
    assert (
        digest.text.splitlines()[0]
        == "imageflow: 4 more job(s) failed (a digest: alerts hold to a few posts a minute)"
    )
    assert digest.text.splitlines()[1] == "• job_8 (tenant t1, workflow wf_1): error 8"


def test_posting_forgets_what_was_carried_and_spends_the_minutes_budget():
    state = _state(12)
    for post in plan(state, now=100.0):
        sent(state, post, now=100.0)
    assert not state.waiting()
    state.queue(_failed(99))
    assert plan(state, now=100.0 + WINDOW_S - 0.1) == []  # every post of the last minute is spent
    assert budget(state, now=100.0 + WINDOW_S) == MAX_POSTS_PER_MINUTE  # a post leaves the window after 60 s
    assert [p.items[0]["job"] for p in plan(state, now=100.0 + WINDOW_S)] == ["job_99"]


def test_a_failed_post_counts_against_the_rate_and_keeps_its_jobs_queued():
    state = _state(1)
    for _ in range(MAX_POSTS_PER_MINUTE):
        tried(state, now=5.0)
    assert plan(state, now=6.0) == [] and len(state.queued) == 1


def test_past_the_queue_bound_failures_are_counted_not_named():
    state = _state(MAX_QUEUED + 5)
    assert (len(state.queued), state.unnamed) == (MAX_QUEUED, 5)
    digest = plan(state, now=0.0)[-1]
    count = MAX_QUEUED + 5 - (MAX_POSTS_PER_MINUTE - 1)
    lines = digest.text.splitlines()
    assert lines[0].startswith(f"imageflow: {count} more job(s) failed")
    assert len(lines) == 1 + MAX_NAMED + 1
    assert (
        lines[-1]
        == f"… and {count - MAX_NAMED} more not named here: `imageflow status` or the Runs page lists them"
    )
    sent(state, digest, now=0.0)
    assert state.unnamed == 0


def test_a_job_failed_without_a_run_says_so_instead_of_a_link():
    runless = {**_failed(1), "runless": True}
    linked = {**_failed(2), "link": "https://dagster.example/runs/r2"}
    state = AlertState()
    state.queue(runless)
    state.queue(linked)
    first, second = plan(state, now=0.0)
    assert first.text.splitlines()[-1].startswith("run: none: the jobs sensor failed it before any run")
    assert second.text.splitlines()[-1] == "run: https://dagster.example/runs/r2"
