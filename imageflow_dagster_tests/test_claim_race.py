"""Two claimers never both win a job: conditional claims in threads, runs starting at once, and two sensors (two
daemons) at once."""

from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from imageflow_dagster.flow.job_store import CLAIM_ID, claim_job, start_run
from imageflow_dagster.ids import new_id
from imageflow_dagster_tests.test_sensor import WORKFLOW, requested, tick


def test_sixteen_threads_claiming_fifty_jobs_have_one_winner_each(pipeline, db):
    jobs = [pipeline.submit(WORKFLOW).job_id for _ in range(50)]
    attempts = [(job_id, new_id("claim")) for job_id in jobs for _ in range(4)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        wins = list(pool.map(lambda a: (a[0], claim_job(db, a[0], a[1], ("processing",), 3600)), attempts))
    winners = [job_id for job_id, won in wins if won]
    assert sorted(winners) == sorted(jobs)


def test_eight_runs_starting_one_unclaimed_job_at_once_have_one_winner(pipeline, db):
    """Runs launched from the UI carry no sensor claim: each claims the job with its own run id in `start_run`."""
    job_id = pipeline.submit(WORKFLOW).job_id
    runs = [new_id("run") for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        started = list(pool.map(lambda run: start_run(db, job_id, run, 3600), runs))
    assert started.count(True) == 1
    [winner] = [run for run, won in zip(runs, started) if won]
    assert pipeline.job(job_id)[CLAIM_ID] == winner
    assert [start_run(db, job_id, run, 3600) for run in runs] == [run == winner for run in runs]  # the owner may go on


def test_two_sensors_on_two_instances_never_launch_a_job_twice(pipeline, db, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_MAX_JOBS_PER_TENANT", "20")  # one tenant's 20 jobs, all claimable in one tick
    monkeypatch.setenv("IMAGEFLOW_MAX_QUEUED_RUNS", "20")
    jobs = [pipeline.submit(WORKFLOW).job_id for _ in range(20)]
    with dg.instance_for_test() as first, dg.instance_for_test() as second:
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda instance: tick(instance, db), [first, second]))
    launched = requested(results[0]) + requested(results[1])
    assert sorted(launched) == sorted(jobs)  # every job once, no job twice
