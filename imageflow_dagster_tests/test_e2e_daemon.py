"""The real sensor path: `dagster-daemon run` as a subprocess on the local stack, jobs inserted in the seed's
format, each processed exactly once; a rerun flip gets one more run; a bad job fails without a run."""

import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

from imageflow_dagster.resources import build_resources
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job
from imageflow_dagster_tests.workflows import single_image_workflow

pytestmark = pytest.mark.e2e
WORKSPACE = Path(__file__).resolve().parent.parent / "workspace.yaml"
ANSWERS = {"name": "Ada"}


def wait_until(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def image_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(job_name="image_generation_job")))


def sensor_ticks(instance: dg.DagsterInstance, name: str = "processing_jobs_sensor") -> list:
    """The ticks the daemon recorded for sensor `name`, newest first."""
    sensors = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    states = [s for s in sensors if s.instigator_name == name]
    return [tick for s in states for tick in instance.get_ticks(s.instigator_origin_id, s.selector_id)]


def ticks_after(instance: dg.DagsterInstance, tick_id: int, count: int) -> list | None:
    """`count` finished ticks of the job sensor begun after tick `tick_id`, once there are that many."""
    finished = (TickStatus.SKIPPED, TickStatus.SUCCESS)
    ended = [t for t in sensor_ticks(instance) if t.tick_id > tick_id and t.status in finished]
    return ended if len(ended) >= count else None


def test_daemon_processes_each_job_exactly_once(local_stack):
    stack = local_stack()
    db = build_resources(Settings.from_env())["dynamodb"]
    workflow = single_image_workflow("Create 1 brand image.")
    jobs = [submit_job(db, workflow=workflow, answers=ANSWERS).job_id for _ in range(6)]
    broken = submit_job(db, workflow=workflow, answers=ANSWERS)
    db.get_client().delete_item(TableName=db.workflows_table, Key={"workflow_id": {"S": broken.workflow_id}})
    status = lambda job_id: (db.get_item(db.jobs_table, {"job_id": job_id}) or {}).get("status")  # noqa: E731

    stack.spawn([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(WORKSPACE)])
    wait_until(lambda: all(status(j) == "completed" for j in jobs), 240, "6 jobs to complete")
    assert status(broken.job_id) == "failed"
    assert db.get_item(db.jobs_table, {"job_id": broken.job_id})["error_message"] == f"Workflow {broken.workflow_id} not found"

    instance = dg.DagsterInstance.from_config(stack.env["DAGSTER_HOME"])
    runs = image_runs(instance)
    assert sorted(r.tags["dagster/partition"] for r in runs) == sorted(jobs)  # exactly one run per job

    flipped = jobs[0]
    first_completion = db.get_item(db.jobs_table, {"job_id": flipped})["completed_at"]
    db.update_item(db.jobs_table, {"job_id": flipped}, set_values={"status": "processing"})  # the seed API's rerun
    wait_until(
        lambda: status(flipped) == "completed"
        and db.get_item(db.jobs_table, {"job_id": flipped})["completed_at"] != first_completion,
        120,
        "the flipped job to complete again",
    )
    # Two whole sensor ticks begun after the job read `completed` again: the run's own writes cause no other run.
    last = max(t.tick_id for t in sensor_ticks(instance))
    later = wait_until(lambda: ticks_after(instance, last, 2), 60, "two more ticks of processing_jobs_sensor")
    assert [t.run_ids for t in later] == [[] for _ in later]
    runs = image_runs(instance)
    assert len(runs) == len(jobs) + 1  # one per job, and the flipped job's second
    assert [r.tags["dagster/partition"] for r in runs].count(flipped) == 2
