"""WarmRunLauncher under the real daemon: runs are forked from the warm worker, a worker killed mid image call is
caught by run monitoring and retried, a run canceled mid image call fails its job, and every job is processed by
exactly the runs and image calls expected: a job processed twice shows up as an extra run or an extra image call
at the server."""

import os
import signal
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from imageflow_dagster.launcher import WORKER_TAG
from imageflow_dagster.local.openai_control import OpenAIServerControl
from imageflow_dagster.resources import build_resources
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job
from imageflow_dagster_tests.test_e2e_daemon import ANSWERS, WORKSPACE, image_runs, wait_until
from imageflow_dagster_tests.workflows import single_image_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
CASES = ("killed", "canceled", "sentinel")


def _workflow(case: str) -> dict:
    # The case name reaches every image prompt (the local planner quotes the step instructions): image calls are
    # counted per job at the server.
    return single_image_workflow(f"Case {case}: create 1 brand image.")


def _image_calls(server: OpenAIServerControl) -> list[tuple[str, dict]]:
    """Every image call the server received, with the case whose job made it ("?" for none)."""
    calls = server.requests("images")
    return [(next((c for c in CASES if f"Case {c}:" in r["prompt"]), "?"), r) for r in calls]


def _image_call_in_flight(server: OpenAIServerControl, case: str) -> dict:
    """Waits until the case's job has an image call the server has not answered yet (no status): the moment to
    kill or cancel its run mid call (every image call takes 6 s)."""
    def in_flight():
        return next((r for c, r in _image_calls(server) if c == case and "status" not in r), None)

    return wait_until(in_flight, 90, f"an image call of the {case} job in flight")


def _started_run(instance: dg.DagsterInstance, job_id: str) -> dg.DagsterRun:
    def started():
        runs = [r for r in image_runs(instance) if r.tags.get("dagster/partition") == job_id]
        return next((r for r in runs if r.status == dg.DagsterRunStatus.STARTED and WORKER_TAG in r.tags), None)

    return wait_until(started, 90, f"a started run of {job_id}")


def test_killed_worker_is_retried_and_canceled_run_fails_its_job(local_stack):
    stack = local_stack(image_latency_s=6.0)
    server = OpenAIServerControl(stack.env["OPENAI_BASE_URL"])
    db = build_resources(Settings.from_env())["dynamodb"]
    row = lambda job_id: db.get_item(db.jobs_table, {"job_id": job_id}) or {}  # noqa: E731
    stack.spawn([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(WORKSPACE)])
    instance = dg.DagsterInstance.from_config(stack.env["DAGSTER_HOME"])
    runs_of = lambda job_id: [  # noqa: E731
        r for r in reversed(image_runs(instance)) if r.tags["dagster/partition"] == job_id
    ]

    killed = submit_job(db, workflow=_workflow("killed"), answers=ANSWERS).job_id
    run = _started_run(instance, killed)
    worker_pid = int(run.tags[WORKER_TAG].split()[0])
    assert worker_pid != os.getpid() and Path(f"/proc/{worker_pid}").exists()
    _image_call_in_flight(server, "killed")
    os.kill(worker_pid, signal.SIGKILL)  # the run's own process, mid image call
    wait_until(lambda: row(killed).get("status") == "completed", 150, "the killed job to complete on its retry")
    runs = wait_until(lambda: all(r.is_finished for r in runs_of(killed)) and runs_of(killed), 60, "both runs to end")
    assert [r.status for r in runs] == [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS]
    assert runs[1].tags[WORKER_TAG] != runs[0].tags[WORKER_TAG]

    canceled = submit_job(db, workflow=_workflow("canceled"), answers=ANSWERS).job_id
    run = _started_run(instance, canceled)
    _image_call_in_flight(server, "canceled")
    instance.run_coordinator.cancel_run(run.run_id)
    is_canceled = lambda: instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED  # noqa: E731
    wait_until(is_canceled, 60, "the run to cancel")
    wait_until(lambda: row(canceled).get("status") == "failed", 90, "the canceled job to fail")
    assert row(canceled)["error_message"] == f"Run {run.run_id} was canceled"

    # A job submitted after both ended completes only after sensor ticks that saw both ended jobs: any run those
    # ticks would have added for them is in the run list by then.
    server.configure(image_latency_s=0.0)
    sentinel = submit_job(db, workflow=_workflow("sentinel"), answers=ANSWERS).job_id
    wait_until(lambda: row(sentinel).get("status") == "completed", 120, "the sentinel job to complete")
    every_run = wait_until(
        lambda: (runs := image_runs(instance)) and all(r.is_finished for r in runs) and runs, 60, "every run to end"
    )
    names = {killed: "killed", canceled: "canceled", sentinel: "sentinel"}
    assert Counter(names.get(r.tags["dagster/partition"], "?") for r in every_run) == {
        "killed": 2,  # the killed run and its retry
        "canceled": 1,
        "sentinel": 1,
    }
    assert Counter(case for case, _ in _image_calls(server)) == {
        "killed": 2,  # the call the kill interrupted, and the retry's
        "canceled": 1,  # the call the cancel interrupted
        "sentinel": 1,
    }
    assert [row(j)["status"] for j in (killed, canceled, sentinel)] == ["completed", "failed", "completed"]
