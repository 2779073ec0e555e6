"""What operators and analysts see in Dagster after real runs, read through Dagster's public instance API: a failed
job's partition is Failed where it failed and keeps what it made, checks are per job and follow the job's rules,
every run carries the job's tags, a partition that is no job stops at once, `rerun_steps` asks again for one step
and its dependents only, and the job's cost adds up over its runs."""

import dagster as dg

from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.run_tags import CLAIM_TAG, JOB_TAG, TENANT_TAG, WORKFLOW_NAME_TAG, WORKFLOW_TAG
from imageflow_dagster_tests.conftest import asset_metadata
from imageflow_dagster_tests.workflows import mixed_workflow, single_image_workflow

ASSETS = ("planned_prompts", "step_reports", "generated_images", "s3_objects", "artifacts", "execution_steps")
DONE, FAILED = dg.AssetPartitionStatus.MATERIALIZED, dg.AssetPartitionStatus.FAILED


def _statuses(instance: dg.DagsterInstance, job_id: str) -> dict[str, object]:
    return {
        asset: instance.get_status_by_partition(dg.AssetKey(asset), [job_id], jobs_partitions).get(job_id)
        for asset in ASSETS
    }


def _checks(result) -> dict[str, tuple[bool, str | None]]:
    return {c.check_name: (c.passed, c.partition) for c in result.get_asset_check_evaluations()}


def _failure_message(result) -> str:
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return failure.step_failure_data.user_failure_data.description


def test_failed_job_is_failed_where_it_failed_and_keeps_what_it_made(pipeline, openai_server):
    completed = pipeline.submit(single_image_workflow("Create 1 brand image."))
    failed = pipeline.submit(single_image_workflow("Create 2 brand images for the failing job."))
    openai_server.add_fault(endpoint="images", match="image 2 of 2", fault="500", times=3)  # outlives the retries

    assert pipeline.run(completed.job_id).success
    result = pipeline.run(failed.job_id)
    assert not result.success and pipeline.job(failed.job_id)["status"] == "failed"

    assert _statuses(pipeline.instance, completed.job_id) == dict.fromkeys(ASSETS, DONE)
    assert _statuses(pipeline.instance, failed.job_id) == {
        "planned_prompts": DONE,
        "step_reports": DONE,
        "generated_images": FAILED,  # where the image failed
        "s3_objects": DONE,  # the image that was made, and its row, stay recorded
        "artifacts": DONE,
        "execution_steps": FAILED,  # the job's outcome
    }
    assert [a["artifact_type"] for a in pipeline.artifacts(failed.job_id)].count("image") == 1
    assert _checks(result) == {
        "every_planned_image_stored": (False, failed.job_id),
        "every_workflow_step_recorded": (True, failed.job_id),
    }
    assert _failure_message(result).startswith("Step 1 (Brand Images) failed: image 2 (")


def test_a_blocked_image_in_a_completed_job_is_reported_not_failed(pipeline):
    job = pipeline.submit(single_image_workflow("Create 3 brand images. [[image2:img-fault:moderation]]"))
    result = pipeline.run(job.job_id)
    assert result.success and pipeline.job(job.job_id)["status"] == "completed"
    assert _statuses(pipeline.instance, job.job_id) == dict.fromkeys(ASSETS, DONE)
    [stored] = [c for c in result.get_asset_check_evaluations() if c.check_name == "every_planned_image_stored"]
    assert (stored.passed, stored.partition) == (True, job.job_id)
    [blocked_key] = stored.metadata["blocked_by_moderation"].value
    assert "_image_2_" in blocked_key and stored.metadata["missing"].value == []


def test_every_run_carries_the_jobs_tags_and_a_claim_of_its_own(pipeline):
    job = pipeline.submit(mixed_workflow())
    result = pipeline.run(job.job_id)  # like a run launched from the UI: no tags but the partition
    tags = pipeline.instance.get_run_by_id(result.run_id).tags
    assert {k: tags.get(k) for k in (JOB_TAG, TENANT_TAG, WORKFLOW_TAG, WORKFLOW_NAME_TAG, CLAIM_TAG)} == {
        JOB_TAG: job.job_id,
        TENANT_TAG: job.tenant_id,
        WORKFLOW_TAG: job.workflow_id,
        WORKFLOW_NAME_TAG: "Brand kit",
        CLAIM_TAG: result.run_id,
    }
    assert tags["dagster/partition"] == job.job_id


def test_a_partition_that_is_no_job_stops_at_once(pipeline, openai_server):
    typo = "job_01M89ZZZZZZZZZZZZZZZZZZZZZ"
    result = pipeline.run(typo)
    assert not result.success
    assert _failure_message(result).startswith(f"Partition '{typo}' is not a job in table {pipeline.db.jobs_table}")
    assert pipeline.job(typo) is None
    assert openai_server.requests() == []
    assert _statuses(pipeline.instance, typo)["execution_steps"] == FAILED


def test_rerun_steps_asks_again_for_one_step_and_its_dependents_and_adds_up_the_cost(pipeline, openai_server):
    job = pipeline.submit(mixed_workflow())  # 1 Research (text) -> 2 Brand Images (3), 1 -> 3 Social Images (2)
    first = pipeline.run(job.job_id)
    assert first.success
    first_cost = asset_metadata(first, "execution_steps")["openai.cost_usd"].value
    openai_server.reset()

    again = pipeline.run(job.job_id, run_config={"ops": {"process_job": {"config": {"rerun_steps": [2]}}}})
    assert again.success and pipeline.job(job.job_id)["status"] == "completed"
    planner_calls = openai_server.requests("responses")
    assert len(planner_calls) == 1 and "Brand Images" in planner_calls[0]["input"]  # step 2's planner only
    assert len(openai_server.requests("images")) == 3  # step 2's images anew; step 3's reused
    metadata = asset_metadata(again, "execution_steps")
    run_cost, job_cost = metadata["openai.cost_usd"].value, metadata["openai.job_cost_usd"].value
    assert 0 < run_cost < first_cost
    assert job_cost == round(first_cost + run_cost, 6)
    assert job_cost == round(sum(float(u["cost_usd"]) for u in pipeline.usage(job.job_id)), 6)


def test_rerun_steps_naming_no_step_stops_before_the_job_is_touched(pipeline, openai_server):
    job = pipeline.submit(single_image_workflow("Create 1 brand image."))
    assert pipeline.run(job.job_id).success
    before = pipeline.job(job.job_id)
    openai_server.reset()
    result = pipeline.run(job.job_id, run_config={"ops": {"process_job": {"config": {"rerun_steps": [4]}}}})
    assert not result.success
    assert _failure_message(result) == f"rerun_steps [4] name no step of job {job.job_id}: its steps are 1 to 1"
    assert pipeline.job(job.job_id) == before
    assert openai_server.requests() == []


def test_a_failed_planner_leaves_planned_prompts_failed(pipeline):
    job = pipeline.submit(single_image_workflow("Create 2 images. [[resp-fault:500]]"))
    assert not pipeline.run(job.job_id).success
    statuses = _statuses(pipeline.instance, job.job_id)
    assert {asset for asset, status in statuses.items() if status == FAILED} == {"planned_prompts", "execution_steps"}
