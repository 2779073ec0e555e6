"""A run's own process killed mid image call, and a run canceled mid image call, under the real daemon, on both
launchers imageflow ships: Dagster's default launcher (the embedded stack's) and Celery run workers
(deploy/dagster.yaml's, here one `imageflow worker` on the test's Redis). The killed run fails, Dagster's run
retry completes its job; the canceled run fails its job with a readable message; and every job is processed by
exactly the runs and image calls expected: a job processed twice shows up as an extra run or an extra image call
at the server. (A whole Celery worker lost is test_celery_fleet.py's.)"""

import os
import signal
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from imageflow_dagster.local.openai_control import OpenAIServerControl
from imageflow_dagster.local.services import celery_env
from imageflow_dagster.resources import build_resources
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job
from imageflow_dagster_tests.test_e2e_daemon import ANSWERS, WORKSPACE, image_runs, wait_until
from imageflow_dagster_tests.workflows import single_image_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.timeout(420)]
CASES = ("killed", "canceled", "sentinel")
BIN = Path(sys.executable).parent


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


def _run_process(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int:
    """The pid of the process executing `run`, from the engine event both launchers' run processes write."""
    events = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    started = [e for e in events if e.message.startswith("Started process for run")]
    return int(started[-1].dagster_event.engine_event_data.metadata["pid"].value)


def _started_run(instance: dg.DagsterInstance, job_id: str) -> dg.DagsterRun:
    def started():
        runs = [r for r in image_runs(instance) if r.tags.get("dagster/partition") == job_id]
        return next((r for r in runs if r.status == dg.DagsterRunStatus.STARTED), None)

    return wait_until(started, 90, f"a started run of {job_id}")


@pytest.fixture(params=["default", "celery"])
def stack(request, local_stack):
    """The local stack and its daemon, on the launcher the test is parametrized with."""
    if request.param == "default":
        stack = local_stack(image_latency_s=6.0)
    else:
        broker = celery_env(request.getfixturevalue("redis_url"), first_db=4)
        stack = local_stack(image_latency_s=6.0, launcher="celery", env=broker)
        stack.spawn([str(BIN / "imageflow"), "worker", "--concurrency=2", "--name=lost@%h"], cwd=stack.home)
    stack.spawn([str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)])
    return stack


def test_killed_run_is_retried_and_canceled_run_fails_its_job(stack):
    server = OpenAIServerControl(stack.env["OPENAI_BASE_URL"])
    db = build_resources(Settings.from_env())["dynamodb"]
    row = lambda job_id: db.get_item(db.jobs_table, {"job_id": job_id}) or {}  # noqa: E731
    instance = dg.DagsterInstance.from_config(stack.env["DAGSTER_HOME"])
    runs_of = lambda job_id: [  # noqa: E731
        r for r in reversed(image_runs(instance)) if r.tags["dagster/partition"] == job_id
    ]

    killed = submit_job(db, workflow=_workflow("killed"), answers=ANSWERS).job_id
    run = _started_run(instance, killed)
    _image_call_in_flight(server, "killed")
    run_pid = _run_process(instance, run)
    assert run_pid != os.getpid() and run_pid not in stack.pids and Path(f"/proc/{run_pid}").exists()
    os.kill(run_pid, signal.SIGKILL)  # the run's own process, mid image call
    wait_until(lambda: row(killed).get("status") == "completed", 150, "the killed job to complete on its retry")
    runs = wait_until(lambda: all(r.is_finished for r in runs_of(killed)) and runs_of(killed), 60, "both runs to end")
    assert [r.status for r in runs] == [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS]
    assert _run_process(instance, runs[1]) != run_pid

    canceled = submit_job(db, workflow=_workflow("canceled"), answers=ANSWERS).job_id
    run = _started_run(instance, canceled)
    _image_call_in_flight(server, "canceled")
    instance.run_coordinator.cancel_run(run.run_id)
    is_canceled = lambda: instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED  # noqa: E731
    wait_until(is_canceled, 90, "the run to cancel")
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
