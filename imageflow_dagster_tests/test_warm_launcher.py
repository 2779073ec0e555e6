"""WarmRunLauncher under the real daemon: runs are forked from the warm worker, a killed run worker is caught by
run monitoring and retried, and a canceled run stops and fails its job."""

import os
import signal
import sys
from pathlib import Path

import dagster as dg
import pytest

from imageflow_dagster.launcher import WORKER_TAG
from imageflow_dagster.resources import build_resources
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job
from imageflow_dagster_tests.test_e2e_daemon import ANSWERS, WORKSPACE, image_runs, wait_until
from imageflow_dagster_tests.workflows import single_image_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


def _started_run(instance: dg.DagsterInstance, job_id: str) -> dg.DagsterRun:
    def started():
        runs = [r for r in image_runs(instance) if r.tags.get("dagster/partition") == job_id]
        return next((r for r in runs if r.status == dg.DagsterRunStatus.STARTED and WORKER_TAG in r.tags), None)

    return wait_until(started, 90, f"a started run of {job_id}")


def test_killed_worker_is_retried_and_canceled_run_fails_its_job(local_stack):
    stack = local_stack(image_latency_s=6.0)
    db = build_resources(Settings.from_env())["dynamodb"]
    workflow = single_image_workflow("Create 1 brand image.")
    job = lambda job_id: db.get_item(db.jobs_table, {"job_id": job_id}) or {}  # noqa: E731
    stack.spawn([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(WORKSPACE)])
    instance = dg.DagsterInstance.from_config(stack.env["DAGSTER_HOME"])

    killed = submit_job(db, workflow=workflow, answers=ANSWERS).job_id
    run = _started_run(instance, killed)
    worker_pid = int(run.tags[WORKER_TAG].split()[0])
    assert worker_pid != os.getpid() and Path(f"/proc/{worker_pid}").exists()
    os.kill(worker_pid, signal.SIGKILL)  # the run's own process, mid image call
    wait_until(lambda: job(killed).get("status") == "completed", 150, "the killed job to complete on its retry")
    runs_of_killed = lambda: [r for r in reversed(image_runs(instance)) if r.tags["dagster/partition"] == killed]  # noqa: E731
    runs = wait_until(lambda: all(r.is_finished for r in runs_of_killed()) and runs_of_killed(), 60, "both runs to end")
    assert [r.status for r in runs] == [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS]
    assert runs[1].tags[WORKER_TAG] != runs[0].tags[WORKER_TAG]

    canceled = submit_job(db, workflow=workflow, answers=ANSWERS).job_id
    run = _started_run(instance, canceled)
    instance.run_coordinator.cancel_run(run.run_id)
    wait_until(lambda: instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED, 60, "the run to cancel")
    wait_until(lambda: job(canceled).get("status") == "failed", 90, "the canceled job to fail")
    assert job(canceled)["error_message"] == f"Run {run.run_id} was canceled"
