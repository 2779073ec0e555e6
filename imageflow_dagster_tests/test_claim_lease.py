"""A claim lives exactly as long as its run (issue 19). The sensor renews an expired claim whose run is queued
or running and takes over one whose run is gone; a run renews its own claim while it works, says so when it lost
it, and stops renewing when it ends; the lease setting refuses values under 10 s. On the real daemon, jobs that
take longer than a 10 s lease, queued behind two runs at a time, are each processed by exactly one run."""

import sys
import threading
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.test_utils import create_run_for_test

from imageflow_dagster.flow.claim_runs import WILL_RETRY_TAG
from imageflow_dagster.flow.job_store import CLAIM_ID, CLAIMED_AT, LEASE_UNTIL, claim_job, mark_completed, renew_lease
from imageflow_dagster.ids import iso_from_epoch
from imageflow_dagster.jobs import image_generation_job
from imageflow_dagster.local.openai_control import OpenAIServerControl
from imageflow_dagster.resources import build_resources
from imageflow_dagster.run_tags import CLAIM_TAG
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job
from imageflow_dagster_tests.conftest import run_while_watching, with_changes
from imageflow_dagster_tests.test_e2e_daemon import WORKSPACE, wait_until
from imageflow_dagster_tests.test_sensor import WORKFLOW, requested, tick
from imageflow_dagster_tests.workflows import single_image_workflow

Status = dg.DagsterRunStatus
ALIVE = [Status.NOT_STARTED, Status.QUEUED, Status.STARTING, Status.STARTED, Status.CANCELING]
GONE = [Status.SUCCESS, Status.FAILURE, Status.CANCELED]
# The code location's job, as a sensor-launched run names it (Dagster refuses a queued run without one).
SENSOR_RUN_ORIGIN = RemoteJobOrigin(
    RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("imageflow_dagster"), "__repository__"),
    image_generation_job.name,
)
LEASE_S = 4  # short, so in-process runs outlive it in seconds; the heartbeat renews every third of any lease


@pytest.fixture
def sensor_instance():
    with dg.instance_for_test() as instance:
        yield instance


def _expired_claim(db, job_id: str, claim: str) -> None:
    """The job row as its claimer left it, claimed long ago, with a lease that ran out a second ago."""
    now = time.time()
    claimed_at = iso_from_epoch(now - 2 * db.claim_lease_s)
    db.update_item(
        db.jobs_table,
        {"job_id": job_id},
        set_values={CLAIM_ID: claim, LEASE_UNTIL: int(now) - 1, CLAIMED_AT: claimed_at},
    )


def _run_of(instance: dg.DagsterInstance, job_id: str, claim: str, status: dg.DagsterRunStatus) -> dg.DagsterRun:
    """A run of the job in Dagster's run storage, as the daemon makes it from the sensor's run request."""
    return create_run_for_test(
        instance,
        job_name=image_generation_job.name,
        status=status,
        tags={CLAIM_TAG: claim, "dagster/partition": job_id},
        remote_job_origin=SENSOR_RUN_ORIGIN,
    )


# ---- the sensor: an expired claim is renewed while its run lives, taken over once it is gone


@pytest.mark.parametrize("status", ALIVE, ids=[s.value for s in ALIVE])
def test_an_expired_claim_whose_run_is_queued_or_running_is_renewed(pipeline, db, sensor_instance, status):
    job_id = pipeline.submit(WORKFLOW).job_id
    _expired_claim(db, job_id, "claim_of_a_live_run")
    _run_of(sensor_instance, job_id, "claim_of_a_live_run", status)
    before = int(time.time())
    assert requested(tick(sensor_instance, db)) == []
    row = pipeline.job(job_id)
    assert row[CLAIM_ID] == "claim_of_a_live_run" and row[LEASE_UNTIL] >= before + db.claim_lease_s


@pytest.mark.parametrize("status", [*GONE, None], ids=[*(s.value for s in GONE), "never-launched"])
def test_an_expired_claim_whose_run_is_gone_is_taken_over(pipeline, db, sensor_instance, status):
    job_id = pipeline.submit(WORKFLOW).job_id
    _expired_claim(db, job_id, "claim_of_a_gone_run")
    if status is not None:
        _run_of(sensor_instance, job_id, "claim_of_a_gone_run", status)
    result = tick(sensor_instance, db)
    assert requested(result) == [job_id]
    new_claim = result.run_requests[0].tags[CLAIM_TAG]
    assert new_claim != "claim_of_a_gone_run" and pipeline.job(job_id)[CLAIM_ID] == new_claim


def test_a_failed_run_dagster_will_retry_keeps_its_claim_for_the_retry_only(
    pipeline, db, sensor_instance, monkeypatch
):
    job_id = pipeline.submit(WORKFLOW).job_id
    _expired_claim(db, job_id, "claim_of_a_retried_run")
    run = _run_of(sensor_instance, job_id, "claim_of_a_retried_run", Status.STARTED)
    sensor_instance.report_run_failed(run)
    sensor_instance.add_run_tags(run.run_id, {WILL_RETRY_TAG: "true"})  # as run retries (the daemon) tag it
    assert requested(tick(sensor_instance, db)) == []  # its retry, under the same claim, is on its way
    assert pipeline.job(job_id)[CLAIM_ID] == "claim_of_a_retried_run"
    monkeypatch.setenv("IMAGEFLOW_SENSOR_UNLAUNCHED_GRACE_S", "0")  # ...and never came: once the renewed lease ran out,
    _expired_claim(db, job_id, "claim_of_a_retried_run")  # the job is taken over
    assert requested(tick(sensor_instance, db)) == [job_id]


def test_one_run_storage_query_answers_for_every_claim_of_a_tick(pipeline, db, sensor_instance, monkeypatch):
    alive = [pipeline.submit(WORKFLOW).job_id for _ in range(10)]
    gone = [pipeline.submit(WORKFLOW).job_id for _ in range(10)]
    for number, job_id in enumerate(alive + gone):
        _expired_claim(db, job_id, f"claim_{number}")
        _run_of(sensor_instance, job_id, f"claim_{number}", Status.QUEUED if job_id in alive else Status.FAILURE)
    queries = []
    for name in ("get_runs", "get_run_records", "get_run_ids"):  # Dagster's, spied on: the answers are its own
        monkeypatch.setattr(sensor_instance, name, _by_claim(getattr(sensor_instance, name), queries))
    result = tick(sensor_instance, db)
    assert sorted(requested(result)) == sorted(gone)
    assert [pipeline.job(j)[CLAIM_ID] for j in alive] == [f"claim_{n}" for n in range(10)]
    assert len(queries) == 1 and sorted(queries[0]) == sorted(f"claim_{n}" for n in range(20))


def _by_claim(method, queries: list):
    """`method`, noting the claims of each call that looks runs up by claim."""

    def noted(*args, **kwargs):
        filters = kwargs.get("filters") or (args[0] if args else None)
        if filters is not None and CLAIM_TAG in filters.tags:
            claims = filters.tags[CLAIM_TAG]
            queries.append([claims] if isinstance(claims, str) else list(claims))
        return method(*args, **kwargs)

    return noted


# ---- the run: its heartbeat keeps the claim while it works, and ends with it


def _heartbeats(job_id: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"claim-heartbeat-{job_id}"]


def test_a_run_longer_than_its_lease_keeps_its_claim(pipeline, db, resources, openai_server):
    resources["dynamodb"] = with_changes(db, claim_lease_s=LEASE_S)
    openai_server.configure(image_latency_s=1.5 * LEASE_S)
    job_id = pipeline.submit(WORKFLOW).job_id
    leases = set()

    def intrude() -> str | None:
        """Another claimer trying the job over and over once the run holds it: it wins only a lapsed lease."""
        row = pipeline.job(job_id)
        if CLAIM_ID not in row:
            return None  # not claimed yet, or already finished
        leases.add(row[LEASE_UNTIL])
        return "taken over" if claim_job(db, job_id, "claim_of_an_intruder", ("processing",), LEASE_S) else None

    taken, result = run_while_watching(pipeline, job_id, intrude, timeout_s=60, poll_s=0.2)
    assert taken is None and result.success
    record = pipeline.instance.get_run_record_by_id(result.run_id)
    assert record.end_time - record.start_time > LEASE_S  # the run outlived its lease...
    assert len(leases) >= 3  # ...which it renewed every third of it
    row = pipeline.job(job_id)
    assert row["status"] == "completed" and CLAIM_ID not in row
    assert openai_server.stats()["images"] == 1
    assert _heartbeats(job_id) == []


# How a run ends, each after seconds of work (two heartbeats or more): a fault on an endpoint, and the latencies.
ENDINGS = {
    "completed": (None, {"image_latency_s": 3}),
    "failed-step": ("images", {"image_latency_s": 1}),  # every try fails: the run records the failure, then fails
    "raised": (None, {"image_latency_s": 3}),  # its artifacts table vanishes mid-run: an exception ends the run
}


@pytest.mark.parametrize("ending", ENDINGS)
def test_the_heartbeat_renews_while_the_run_works_and_stops_when_it_ends(
    pipeline, db, resources, openai_server, ending
):
    resources["dynamodb"] = with_changes(db, claim_lease_s=LEASE_S)
    faulty_endpoint, latencies = ENDINGS[ending]
    if faulty_endpoint:
        openai_server.add_fault(endpoint=faulty_endpoint, match="", fault="500")
    openai_server.configure(**latencies)
    job_id = pipeline.submit(WORKFLOW).job_id
    leases, vanished = [], []

    def watch() -> None:
        row = pipeline.job(job_id)
        if CLAIM_ID not in row or not _heartbeats(job_id):
            return
        leases.append(row[LEASE_UNTIL])
        if ending == "raised" and len(set(leases)) >= 2 and not vanished:
            vanished.append(db.get_client().delete_table(TableName=db.artifacts_table))

    _, result = run_while_watching(pipeline, job_id, watch, timeout_s=60, poll_s=0.1)
    assert len(set(leases)) >= 2  # it ran, and renewed the lease
    assert _heartbeats(job_id) == []
    row = pipeline.job(job_id)
    assert row["status"] == ("completed" if ending == "completed" else "failed") and CLAIM_ID not in row
    assert result.success == (ending == "completed")
    if ending == "raised":
        assert row["error_type"] == "TableError"


def test_a_run_whose_claim_was_taken_over_says_so_and_writes_no_outcome(pipeline, db, resources, openai_server):
    resources["dynamodb"] = with_changes(db, claim_lease_s=LEASE_S)
    openai_server.configure(image_latency_s=LEASE_S)
    job_id = pipeline.submit(WORKFLOW).job_id

    def take_over() -> str | None:
        """A claimer that ignores the lease (say, another deployment's sensor) takes the job from the run."""
        if CLAIM_ID not in pipeline.job(job_id):
            return None
        db.update_item(db.jobs_table, {"job_id": job_id}, set_values={CLAIM_ID: "claim_of_another_deployment"})
        return "taken"

    taken, result = run_while_watching(pipeline, job_id, take_over, timeout_s=60)
    assert taken and not result.success
    logged = [entry.user_message for entry in pipeline.instance.all_logs(result.run_id)]
    assert any(f"job {job_id} was taken over by claim claim_of_another_deployment" in m for m in logged), logged
    [failure] = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
    assert f"Job {job_id} was taken over by another run; outcome not written" in failure
    row = pipeline.job(job_id)
    assert row["status"] == "processing" and row[CLAIM_ID] == "claim_of_another_deployment"


def test_a_lapsed_lease_nobody_took_over_is_still_its_runs(pipeline, db):
    """A run that missed its renewals (a long pause) and was not taken over renews and finishes as the owner."""
    job_id = pipeline.submit(WORKFLOW).job_id
    _expired_claim(db, job_id, "claim_of_a_paused_run")
    assert renew_lease(db, job_id, "claim_of_a_paused_run", LEASE_S)
    assert pipeline.job(job_id)[LEASE_UNTIL] > time.time()
    _expired_claim(db, job_id, "claim_of_a_paused_run")
    assert mark_completed(db, job_id, {}, claim_id="claim_of_a_paused_run")
    assert pipeline.job(job_id)["status"] == "completed"
    assert not renew_lease(db, job_id, "claim_of_a_paused_run", LEASE_S)  # released: nothing left to renew


@pytest.mark.parametrize("value, accepted", [("9", False), ("10", True)])
def test_a_lease_under_ten_seconds_is_refused(monkeypatch, value, accepted):
    monkeypatch.setenv("IMAGEFLOW_CLAIM_LEASE_S", value)
    if accepted:
        assert Settings.from_env().claim_lease_s == 10
    else:
        with pytest.raises(ValueError, match="IMAGEFLOW_CLAIM_LEASE_S must be at least 10 seconds"):
            Settings.from_env()


# ---- the "done when": the real daemon, a 10 s lease, jobs longer than it behind a queue

JOBS = 5
IMAGE_LATENCY_S = 12


@pytest.mark.e2e
@pytest.mark.timeout(300)  # about a minute: three waves of two 12 s runs; the waits below bound it
def test_jobs_longer_than_a_ten_second_lease_behind_a_queue_run_once_each(local_stack, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_CLAIM_LEASE_S", "10")
    stack = local_stack(image_latency_s=IMAGE_LATENCY_S, max_concurrent_runs=2)
    db = build_resources(Settings.from_env())["dynamodb"]
    workflow = single_image_workflow("Create 1 brand image.")
    jobs = [submit_job(db, workflow=workflow, answers={"name": "Ada"}).job_id for _ in range(JOBS)]
    status = lambda job_id: db.get_item(db.jobs_table, {"job_id": job_id})["status"]  # noqa: E731

    stack.spawn([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(WORKSPACE)])
    wait_until(lambda: all(status(j) in ("completed", "failed") for j in jobs), 240, f"{JOBS} jobs to finish")
    assert [status(j) for j in jobs] == ["completed"] * JOBS

    instance = dg.DagsterInstance.from_config(stack.env["DAGSTER_HOME"])
    runs_filter = dg.RunsFilter(job_name=image_generation_job.name)
    wait_until(lambda: all(r.is_finished for r in instance.get_runs(filters=runs_filter)), 60, "every run to end")
    records = instance.get_run_records(filters=runs_filter)
    assert Counter(r.dagster_run.tags["dagster/partition"] for r in records) == Counter(jobs)  # one run per job
    assert {r.dagster_run.status for r in records} == {Status.SUCCESS}
    waited_and_ran = max(r.end_time - r.create_timestamp.timestamp() for r in records)
    assert waited_and_ran > 10  # some run lived past the lease, queued and running
    image_calls = OpenAIServerControl(stack.env["OPENAI_BASE_URL"]).requests("images")
    assert len(image_calls) == JOBS and {call["status"] for call in image_calls} == {200}
    instance.dispose()
