"""One owner per job: a run does not start a job another run holds (`start_run`), a claim past its lease is taken
over (by a run and by the sensor), and the run-failure sensor leaves a job alone while its run will be retried."""

import time

import dagster as dg
import pytest
from dagster._core.events import DagsterEventType

from imageflow_dagster.flow.job_store import CLAIM_ID, CLAIMED_AT, LEASE_UNTIL
from imageflow_dagster.ids import iso_from_epoch
from imageflow_dagster.run_tags import CLAIM_TAG
from imageflow_dagster.sensors import WILL_RETRY_TAG
from imageflow_dagster_tests.conftest import sense_run_failure, with_changes
from imageflow_dagster_tests.test_sensor import WORKFLOW, requested, tick


@pytest.fixture
def sensor_instance():
    with dg.instance_for_test() as instance:
        yield instance


def _hold(db, job_id: str, claim: str, lease_until: int) -> None:
    """The job row as a claimer leaves it while it owns the job (or left it when it died)."""
    db.update_item(
        db.jobs_table,
        {"job_id": job_id},
        set_values={CLAIM_ID: claim, LEASE_UNTIL: lease_until, CLAIMED_AT: iso_from_epoch(time.time())},
    )


def _step_failures(result: dg.ExecuteInProcessResult) -> list[str]:
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    return [e.step_failure_data.error.message for e in failures]


def test_second_run_is_refused_while_another_run_holds_the_job(pipeline, db, openai_server):
    job = pipeline.submit(WORKFLOW)
    _hold(db, job.job_id, "claim_of_the_first_run", int(time.time()) + db.claim_lease_s)
    result = pipeline.run(job.job_id, tags={CLAIM_TAG: "claim_of_the_second_run"})
    assert not result.success
    [message] = _step_failures(result)
    assert f"Job {job.job_id} is being processed by another run; not started" in message
    assert openai_server.stats()["attempts"] == 0 and openai_server.requests() == []  # no OpenAI call at all
    row = pipeline.job(job.job_id)  # the first run's job, untouched
    assert row["status"] == "processing" and row[CLAIM_ID] == "claim_of_the_first_run" and "started_at" not in row
    assert pipeline.artifacts(job.job_id) == [] and pipeline.usage(job.job_id) == []


def test_claim_past_its_lease_is_taken_over_by_a_new_run(pipeline, db, openai_server):
    job = pipeline.submit(WORKFLOW)
    _hold(db, job.job_id, "claim_of_a_dead_run", int(time.time()) - 1)  # its lease ended a second ago
    result = pipeline.run(job.job_id, tags={CLAIM_TAG: "claim_of_the_new_run"})
    assert result.success and _step_failures(result) == []
    row = pipeline.job(job.job_id)
    assert row["status"] == "completed" and CLAIM_ID not in row  # the new run owned it and finished it
    assert openai_server.stats()["images"] == 1
    assert [a["artifact_type"] for a in pipeline.artifacts(job.job_id)].count("image") == 1


def test_sensor_claims_a_job_whose_claim_is_past_its_lease(pipeline, db, sensor_instance):
    live, expired = pipeline.submit(WORKFLOW).job_id, pipeline.submit(WORKFLOW).job_id
    now = int(time.time())
    _hold(db, live, "claim_live", now + db.claim_lease_s)
    _hold(db, expired, "claim_expired", now - 1)
    result = tick(sensor_instance, db)
    assert requested(result) == [expired]
    new_claim = result.run_requests[0].tags[CLAIM_TAG]
    assert new_claim != "claim_expired" and pipeline.job(expired)[CLAIM_ID] == new_claim
    assert pipeline.job(live)[CLAIM_ID] == "claim_live"


@pytest.mark.parametrize(
    "will_retry, ends_failed",
    [("true", False), ("false", True), (None, True)],
    ids=["tagged-will-retry", "tagged-no-retry", "untagged"],
)
def test_run_failure_sensor_spares_a_job_whose_run_will_be_retried(pipeline, db, resources, will_retry, ends_failed):
    resources["openai"] = with_changes(resources["openai"], base_url=None)
    job = pipeline.submit(WORKFLOW)
    result = pipeline.run(job.job_id)
    assert not result.success
    run_id = result.dagster_run.run_id
    # As if the worker died before the asset code could record anything: the job is still processing.
    db.update_item(
        db.jobs_table,
        {"job_id": job.job_id},
        set_values={"status": "processing", CLAIM_ID: run_id},
        remove=["error_message", "error_type", "failed_at"],
    )
    if will_retry is not None:
        pipeline.instance.add_run_tags(run_id, {WILL_RETRY_TAG: will_retry})  # what run retries (the daemon) add
    run = pipeline.instance.get_run_by_id(run_id)
    assert run.tags.get(WILL_RETRY_TAG) == will_retry
    sense_run_failure(pipeline, result)
    row = pipeline.job(job.job_id)
    if ends_failed:
        assert row["status"] == "failed" and row["error_type"] == "RunFailed" and CLAIM_ID not in row
        assert row["error_message"].startswith(f"Run {run_id} failed:")
    else:  # the retry will own the job: it keeps its status and claim, and no error is written
        assert row["status"] == "processing" and row[CLAIM_ID] == run_id
        assert "error_type" not in row and "error_message" not in row and "failed_at" not in row
