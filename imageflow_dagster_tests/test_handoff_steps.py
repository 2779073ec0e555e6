"""Handoff steps end to end (moto, the local OpenAI server, the sensor): the target job's rows in the seed's format,
the target job run to completion, no second target job on a rerun, and the refusals that fail the job."""

import dagster as dg
import pytest

from imageflow_dagster.definitions import defs
from imageflow_dagster.ids import new_id, utc_now_iso
from imageflow_dagster.sensors import processing_jobs_sensor
from imageflow_dagster.steps.handoff import SUBMISSION_DEFAULTS
from imageflow_dagster_tests.conftest import DEFAULT_ANSWERS, read_json_object
from imageflow_dagster_tests.workflows import text_step

TARGET = {"workflow_name": "Follow-up", "steps": [text_step("Follow Up", "Write a follow-up from the input.", 0)]}


def put_workflow(db, workflow: dict, tenant_id: str = "tenant_demo", **fields) -> str:
    """A workflow row as the seed's API stores it; returns its id."""
    workflow_id = new_id("wf")
    now = utc_now_iso()
    row = {"status": "active", **workflow, **fields, "workflow_id": workflow_id, "tenant_id": tenant_id}
    db.put_item(db.workflows_table, {**row, "created_at": now, "updated_at": now})
    return workflow_id


def handing_off(target_workflow_id: str, **fields) -> dict:
    handoff = {"step_name": "Pass on", "step_order": 1, "instructions": "", "handoff_workflow_id": target_workflow_id}
    return {"workflow_name": "Qualify", "steps": [text_step("Research", "Research the company.", 0), {**handoff, **fields}]}


def jobs_of_workflow(db, workflow_id: str) -> list[dict]:
    rows = db.get_client().scan(TableName=db.jobs_table)["Items"]
    return [r for r in rows if r["workflow_id"]["S"] == workflow_id]


def sensor_requests(db) -> list[dg.RunRequest]:
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, instance_ref=instance.get_ref(), definitions=defs, resources={"dynamodb": db}
        )
        return processing_jobs_sensor.evaluate_tick(context).run_requests


def test_a_handoff_starts_a_job_of_the_target_workflow_that_completes(pipeline, db, settings, s3_client):
    target_id = put_workflow(db, TARGET, form_id="form_target")
    job = pipeline.submit(handing_off(target_id, handoff_include_context=True))
    assert pipeline.run(job.job_id).success

    steps = read_json_object(s3_client, settings.bucket, pipeline.job(job.job_id)["execution_steps_s3_key"])
    research, handoff = steps[1], steps[2]
    assert handoff["step_type"] == "workflow_handoff" and handoff["success"] is True
    target_job_id = handoff["output"]["triggered_job_id"]
    assert handoff["output"] == {"triggered_job_id": target_job_id, "success": True, "error": None}
    assert target_job_id.startswith("job_") and len(target_job_id) == 30
    assert "webhook_url" not in handoff["input"]

    target_job = pipeline.job(target_job_id)
    assert {k: target_job[k] for k in ("tenant_id", "workflow_id", "status")} == {
        "tenant_id": job.tenant_id,
        "workflow_id": target_id,
        "status": "processing",
    }
    submission = db.get_item(db.submissions_table, {"submission_id": target_job["submission_id"]})
    assert (submission["job_id"], submission["workflow_id"], submission["form_id"]) == (target_job_id, target_id, "form_target")
    data = submission["submission_data"]
    assert list(data) == ["name", "email", "phone", "company", "input", "context", "_handoff"]
    assert {k: data[k] for k in DEFAULT_ANSWERS} == DEFAULT_ANSWERS and data["phone"] == ""
    assert data["input"] == research["output"]  # previous_step_output: the research text
    assert data["context"].startswith("=== Form Submission ===") and "=== Step 1: Research ===" in data["context"]
    assert data["_handoff"] | {"timestamp": ""} == {
        "source_job_id": job.job_id,
        "source_workflow_id": job.workflow_id,
        "source_step_index": 1,
        "source_step_name": "Pass on",
        "bypass_required_inputs": True,
        "timestamp": "",
    }
    # Recorded: what was sent; the target's submission adds the seed webhook endpoint's defaults under it.
    sent = handoff["input"]["payload"]
    assert sent["workflow_id"] == target_id and "phone" not in sent["submission_data"]
    assert {**SUBMISSION_DEFAULTS, **sent["submission_data"]} == data

    # imageflow's own sensor picks the target job up; its run completes with the handed-off input.
    [request] = sensor_requests(db)
    assert request.partition_key == target_job_id
    assert pipeline.run(target_job_id, tags=request.tags).success
    finished = pipeline.job(target_job_id)
    assert finished["status"] == "completed" and finished["output_url"]
    target_steps = read_json_object(s3_client, settings.bucket, finished["execution_steps_s3_key"])
    assert target_steps[0]["input"]["input"] == research["output"]


def test_a_rerun_of_the_source_job_starts_no_second_target_job(pipeline, db):
    target_id = put_workflow(db, TARGET)
    job = pipeline.submit(handing_off(target_id))
    assert pipeline.run(job.job_id).success
    [first] = jobs_of_workflow(db, target_id)
    db.update_item(db.jobs_table, {"job_id": first["job_id"]["S"]}, set_values={"status": "completed"})

    assert pipeline.run(job.job_id).success
    [again] = jobs_of_workflow(db, target_id)
    assert again["job_id"] == first["job_id"] and again["status"]["S"] == "completed"


@pytest.mark.parametrize(
    "target, reason",
    [
        ("same", "cannot hand off to the same workflow ({source})"),
        ("missing", "target workflow wf_gone not found"),
        ("deleted", "target workflow {target} not found"),
        ("other_tenant", "target workflow {target} is not in the same tenant"),
    ],
)
def test_a_refused_target_fails_the_job_and_starts_nothing(pipeline, db, target, reason):
    target_ids = {
        "missing": "wf_gone",
        "deleted": put_workflow(db, TARGET, deleted_at=utc_now_iso()),
        "other_tenant": put_workflow(db, TARGET, tenant_id="tenant_other"),
    }
    job = pipeline.submit(handing_off(target_ids.get(target, "wf_placeholder")))
    if target == "same":
        row = db.get_item(db.workflows_table, {"workflow_id": job.workflow_id})
        row["steps"][1]["handoff_workflow_id"] = job.workflow_id
        db.put_item(db.workflows_table, row)
    target_id = target_ids.get(target, job.workflow_id)
    assert not pipeline.run(job.job_id).success

    row = pipeline.job(job.job_id)
    expected = reason.format(source=job.workflow_id, target=target_id)
    assert (row["status"], row["error_message"]) == ("failed", f"Step 2 (Pass on) failed: {expected}")
    assert row["error_type"] == "HandoffRefused"
    started = [r for r in db.get_client().scan(TableName=db.jobs_table)["Items"] if r["job_id"]["S"] != job.job_id]
    assert started == []


def test_invalid_handoff_settings_are_refused_when_the_job_loads(pipeline, openai_server):
    job = pipeline.submit(handing_off("wf_next", handoff_payload_mode="everything"))
    assert not pipeline.run(job.job_id).success
    row = pipeline.job(job.job_id)
    assert row["error_type"] == "InvalidJobRecord"
    assert row["error_message"].startswith(
        f"Workflow {job.workflow_id} step 2 (Pass on) has invalid handoff settings: handoff_payload_mode:"
    )
    assert openai_server.requests() == []
