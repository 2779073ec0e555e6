"""Fair share between tenants, backpressure from Dagster's run queue, and runs launched by hand ahead of the sensor's
(issue 19). In process, the sensor ticks against real run storage: its run requests become queued runs as the daemon
makes them, runs start and end there, and what stays unclaimed is read from the jobs table. On the real daemon, a
tenant's one job submitted just after another tenant's ten completes before that tenant's fifth."""

import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.storage.tags import PRIORITY_TAG
from dagster._core.test_utils import create_run_for_test
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

from imageflow_dagster.flow.job_store import CLAIM_ID, mark_completed
from imageflow_dagster.jobs import image_generation_job
from imageflow_dagster.resources import build_resources
from imageflow_dagster.run_tags import CLAIM_TAG, TENANT_TAG
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job
from imageflow_dagster_tests.test_e2e_daemon import ANSWERS, WORKSPACE, image_runs, wait_until
from imageflow_dagster_tests.test_sensor import WORKFLOW, requested, tick, write_created_at
from imageflow_dagster_tests.workflows import single_image_workflow

Status = dg.DagsterRunStatus
RUN_ORIGIN = RemoteJobOrigin(  # the code location's job: Dagster's queue holds only runs that name one
    RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("imageflow_dagster"), "__repository__"), image_generation_job.name
)


@pytest.fixture
def sensor_instance():
    with dg.instance_for_test() as instance:
        yield instance


def submit(pipeline, tenant: str, count: int) -> list[str]:
    return [pipeline.submit(WORKFLOW, tenant_id=tenant).job_id for _ in range(count)]


def queue_runs(instance: dg.DagsterInstance, result: dg.SensorResult) -> dict[str, dg.DagsterRun]:
    """The tick's run requests as the daemon submits them: queued runs with the requests' tags, by job id."""
    return {
        request.partition_key: create_run_for_test(
            instance,
            job_name=image_generation_job.name,
            status=Status.QUEUED,
            tags={**request.tags, "dagster/partition": request.partition_key},
            remote_job_origin=RUN_ORIGIN,
        )
        for request in result.run_requests
    }


def report(instance: dg.DagsterInstance, run: dg.DagsterRun, event_type: DagsterEventType) -> None:
    instance.report_dagster_event(DagsterEvent(event_type.value, job_name=run.job_name), run.run_id)


def finish(pipeline, instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """What a run does: starts, completes its job under its claim, and succeeds."""
    report(instance, run, DagsterEventType.RUN_START)
    job_id = run.tags["dagster/partition"]
    assert mark_completed(pipeline.db, job_id, {}, claim_id=run.tags[CLAIM_TAG])
    report(instance, run, DagsterEventType.RUN_SUCCESS)


def unclaimed(pipeline, job_ids: list[str]) -> list[str]:
    """The jobs still waiting in the jobs table: `processing` and carrying no claim."""
    rows = {job_id: pipeline.job(job_id) for job_id in job_ids}
    return [job_id for job_id, row in rows.items() if row["status"] == "processing" and CLAIM_ID not in row]


# ---- fair share: a tenant's share, the rest unclaimed, in order


def test_a_tenant_over_its_share_waits_unclaimed_while_another_tenant_is_claimed(
    pipeline, db, sensor_instance, monkeypatch
):
    monkeypatch.setenv("IMAGEFLOW_MAX_JOBS_PER_TENANT", "2")
    big = submit(pipeline, "tenant_big", 5)
    small = submit(pipeline, "tenant_small", 1)
    write_created_at(db, big + small)  # the small tenant's job is the newest

    first = tick(sensor_instance, db)
    assert sorted(requested(first)) == sorted(big[:2] + small)
    assert unclaimed(pipeline, big) == big[2:]
    runs = queue_runs(sensor_instance, first)

    second = tick(sensor_instance, db, first.cursor)  # two of the big tenant's runs in flight: its share
    assert requested(second) == [] and unclaimed(pipeline, big) == big[2:]

    finish(pipeline, sensor_instance, runs[big[0]])
    third = tick(sensor_instance, db, second.cursor)
    assert requested(third) == [big[2]]  # its oldest waiting job, not a later one
    runs |= queue_runs(sensor_instance, third)

    finish(pipeline, sensor_instance, runs[big[1]])
    finish(pipeline, sensor_instance, runs[big[2]])
    fourth = tick(sensor_instance, db, third.cursor)
    assert requested(fourth) == big[3:5] and unclaimed(pipeline, big) == []


def test_a_tenants_later_jobs_never_overtake_its_held_ones_while_the_sweep_moves_on(
    pipeline, db, sensor_instance, monkeypatch
):
    """Four jobs read per tick: the big tenant's backlog fills the first ticks' reads, yet the cursor moves on to
    the other tenant; as the big tenant's runs end, its held jobs are claimed one by one, in order."""
    monkeypatch.setenv("IMAGEFLOW_SENSOR_MAX_ITEMS_PER_TICK", "4")
    monkeypatch.setenv("IMAGEFLOW_MAX_JOBS_PER_TENANT", "2")
    big = submit(pipeline, "tenant_big", 6)
    other = submit(pipeline, "tenant_other", 2)
    write_created_at(db, big + other)

    claimed, runs, cursor = [], {}, None
    for _ in range(3):  # 2 claimed, 2 held; 2 more held (the front read again); the other tenant's 2
        result = tick(sensor_instance, db, cursor)
        claimed += requested(result)
        runs |= queue_runs(sensor_instance, result)
        cursor = result.cursor
    assert claimed == big[:2] + other
    assert unclaimed(pipeline, big) == big[2:]

    for _ in big[2:]:
        oldest_in_flight = next(job_id for job_id in claimed if job_id in big and job_id in runs)
        finish(pipeline, sensor_instance, runs.pop(oldest_in_flight))
        result = tick(sensor_instance, db, cursor)
        assert len(requested(result)) == 1, "one of its runs ended: one more job of the tenant"
        claimed += requested(result)
        runs |= queue_runs(sensor_instance, result)
        cursor = result.cursor
    assert [job_id for job_id in claimed if job_id in big] == big


def test_runs_launched_by_hand_count_toward_the_share_read_in_one_query(pipeline, db, sensor_instance, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_MAX_JOBS_PER_TENANT", "2")
    for _ in range(2):  # an operator's two runs of tenant a's jobs, started: they carry the tenant's tag
        create_run_for_test(
            sensor_instance,
            job_name=image_generation_job.name,
            status=Status.STARTED,
            tags={TENANT_TAG: "tenant_a"},
            remote_job_origin=RUN_ORIGIN,
        )
    waiting_a = submit(pipeline, "tenant_a", 2)
    waiting_b = submit(pipeline, "tenant_b", 1)
    queries: list[str] = []
    for name in ("get_runs", "get_run_records", "get_run_ids", "get_runs_count"):  # Dagster's, spied on
        monkeypatch.setattr(sensor_instance, name, noted(getattr(sensor_instance, name), queries, name))

    assert requested(tick(sensor_instance, db)) == waiting_b
    assert unclaimed(pipeline, waiting_a) == waiting_a
    assert queries == ["get_run_records"]  # every tenant's runs in flight, in one query


def noted(method, queries: list[str], name: str):
    def call(*args, **kwargs):
        queries.append(name)
        return method(*args, **kwargs)

    return call


# ---- backpressure: a bound on runs queued in Dagster


def test_the_backlog_waits_unclaimed_in_dynamodb_not_in_the_run_queue(pipeline, db, sensor_instance, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_MAX_QUEUED_RUNS", "3")
    jobs = [submit(pipeline, f"tenant_{number}", 1)[0] for number in range(8)]  # eight tenants: no share applies
    write_created_at(db, jobs)

    first = tick(sensor_instance, db)
    assert requested(first) == jobs[:3]
    runs = queue_runs(sensor_instance, first)
    second = tick(sensor_instance, db, first.cursor)
    assert requested(second) == [] and unclaimed(pipeline, jobs) == jobs[3:]
    assert len(sensor_instance.get_runs(filters=dg.RunsFilter(statuses=[Status.QUEUED]))) == 3

    for job_id in jobs[:2]:  # two runs leave the queue: they start
        report(sensor_instance, runs[job_id], DagsterEventType.RUN_START)
    third = tick(sensor_instance, db, second.cursor)
    assert requested(third) == jobs[3:5]  # oldest first, up to the bound again
    assert unclaimed(pipeline, jobs) == jobs[5:]


def test_with_room_for_one_run_a_tenant_with_none_in_flight_goes_first(pipeline, db, sensor_instance, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_MAX_QUEUED_RUNS", "1")
    busy = submit(pipeline, "tenant_busy", 3)
    newcomer = submit(pipeline, "tenant_new", 1)
    write_created_at(db, busy + newcomer)

    first = tick(sensor_instance, db)
    assert requested(first) == busy[:1]
    runs = queue_runs(sensor_instance, first)
    report(sensor_instance, runs[busy[0]], DagsterEventType.RUN_START)  # running: the queue has room for one
    second = tick(sensor_instance, db, first.cursor)
    assert requested(second) == newcomer  # before the busy tenant's older jobs: its first run against a second
    assert unclaimed(pipeline, busy) == busy[1:]


# ---- runs launched by hand go before the sensor's queued runs


def test_a_run_launched_by_hand_is_dequeued_before_the_sensors_queued_runs(pipeline, db, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_MAX_QUEUED_RUNS", "10")
    overrides = {"concurrency": {"runs": {"max_concurrent_runs": 2}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        jobs = submit(pipeline, "tenant_a", 2) + submit(pipeline, "tenant_b", 2)
        result = tick(instance, db)
        sensor_runs = queue_runs(instance, result)
        by_hand = create_run_for_test(  # an asset's Materialize or the Launchpad: no priority tag, so 0
            instance,
            job_name=image_generation_job.name,
            status=Status.QUEUED,
            tags={"dagster/partition": jobs[0]},
            remote_job_origin=RUN_ORIGIN,
        )
        # The order Dagster's queued run coordinator computes on these queued runs: the two it would start now.
        coordinator = QueuedRunCoordinatorDaemon(interval_seconds=1)
        dequeued = coordinator._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)
        first_sensor_run = sensor_runs[requested(result)[0]]
        assert [run.run_id for run in dequeued] == [by_hand.run_id, first_sensor_run.run_id]


def test_a_sensor_run_that_started_is_rerun_at_the_priority_of_a_run_launched_by_hand(pipeline, db, sensor_instance):
    """Re-execute in the UI copies the parent run's tags (dagster_graphql: launch_reexecution_from_parent_run,
    use_parent_run_tags defaults to true): a started run of the sensor carries priority 0, not -1."""
    job_id = submit(pipeline, "tenant_a", 1)[0]
    [request] = tick(sensor_instance, db).run_requests
    assert request.tags.get(PRIORITY_TAG) == "-1"
    result = pipeline.run(job_id, tags=request.tags)  # the sensor's run, executed
    assert result.success
    assert pipeline.instance.get_run_by_id(result.run_id).tags[PRIORITY_TAG] == "0"


# ---- on the real daemon: the "done when"


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_a_tenants_one_job_completes_before_another_tenants_fifth(local_stack, monkeypatch):
    """Two runs at once, two jobs per tenant: ten jobs of one tenant, then one of another. Oldest first with no
    share, the one job would run eleventh; with the share it runs as soon as one of the first two runs ends."""
    monkeypatch.setenv("IMAGEFLOW_MAX_JOBS_PER_TENANT", "2")  # read by the daemon's code server, spawned below
    stack = local_stack(image_latency_s=1.5, max_concurrent_runs=2)
    db = build_resources(Settings.from_env())["dynamodb"]
    workflow = single_image_workflow("Create 1 brand image.")
    big = [submit_job(db, workflow=workflow, answers=ANSWERS, tenant_id="tenant_big").job_id for _ in range(10)]
    small = submit_job(db, workflow=workflow, answers=ANSWERS, tenant_id="tenant_small").job_id

    def completed_with_the_small_one() -> dict[str, str] | None:
        rows = [db.get_item(db.jobs_table, {"job_id": job_id}) for job_id in [*big, small]]
        done = {row["job_id"]: row["completed_at"] for row in rows if row["status"] == "completed"}
        return done if small in done and len(done) >= 6 else None

    stack.spawn([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(WORKSPACE)])
    done = wait_until(completed_with_the_small_one, 150, "the small tenant's job and 5 others to complete")
    big_done = sorted(at for job_id, at in done.items() if job_id in big)
    assert done[small] < big_done[4], f"the small tenant's job completed at {done[small]}, after {big_done[:5]}"

    instance = dg.DagsterInstance.from_config(stack.env["DAGSTER_HOME"])
    big_runs = [run for run in image_runs(instance) if run.tags[TENANT_TAG] == "tenant_big"]
    assert most_at_once(instance, big_runs) <= 2  # queued or running: the big tenant never had more than its share


def most_at_once(instance: dg.DagsterInstance, runs: list[dg.DagsterRun]) -> int:
    """The most runs in flight at one moment, from each run's creation to its end in Dagster's run storage."""
    records = instance.get_run_records(filters=dg.RunsFilter(run_ids=[run.run_id for run in runs]))
    spans = [(r.create_timestamp.timestamp(), r.end_time or float("inf")) for r in records]
    return max(sum(begin <= moment < end for begin, end in spans) for moment, _ in spans)
