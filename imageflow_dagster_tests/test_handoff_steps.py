"""Handoff steps end to end (moto, the local OpenAI server, the sensor): the target job's rows in the seed's format,
the target job run to completion, no second target job on a rerun, the refusals that fail the job, and the hop
count that stops workflows handing off to each other."""

import dagster as dg
import pytest

from imageflow_dagster.definitions import defs
from imageflow_dagster.ids import new_id, utc_now_iso
from imageflow_dagster.settings import Settings
from imageflow_dagster.steps.handoff import SUBMISSION_DEFAULTS
from imageflow_dagster_tests.conftest import DEFAULT_ANSWERS, read_json_object
from imageflow_dagster_tests.settings_now import settings_now
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


def hand_off_to(db, workflow_id: str, target_workflow_id: str) -> None:
    """Points the handoff step (step 2) of a stored workflow at another workflow, as the seed's UI does."""
    row = db.get_item(db.workflows_table, {"workflow_id": workflow_id})
    row["steps"][1]["handoff_workflow_id"] = target_workflow_id
    db.put_item(db.workflows_table, row)


def all_rows(db, table: str) -> list[dict]:
    return db.get_client().scan(TableName=table)["Items"]


def triggered_job_id(pipeline, s3_client, settings, job_id: str) -> str:
    """The job the handoff step (step 2) of a finished job started, as its execution steps record it."""
    steps = read_json_object(s3_client, settings.bucket, pipeline.job(job_id)["execution_steps_s3_key"])
    return steps[2]["output"]["triggered_job_id"]


def sensor_requests(db) -> list[dg.RunRequest]:
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, instance_ref=instance.get_ref(), definitions=defs,
            resources={"dynamodb": db, "settings": settings_now()},
        )
        return defs.resolve_sensor_def("processing_jobs_sensor").evaluate_tick(context).run_requests


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
    assert {k: target_job[k] for k in ("tenant_id", "workflow_id", "status", "handoff_depth")} == {
        "tenant_id": job.tenant_id,
        "workflow_id": target_id,
        "status": "processing",
        "handoff_depth": 1,  # the submitted job, as the seed's API writes it, has none: depth 0
    }
    assert "handoff_depth" not in pipeline.job(job.job_id)
    # The seed's job row plus the hop count, nothing else (the sensor has not claimed it: no run here).
    seed_fields = {"job_id", "tenant_id", "workflow_id", "submission_id", "status", "created_at", "updated_at"}
    assert set(target_job) == seed_fields | {"handoff_depth"}
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


def test_workflows_handing_off_to_each_other_stop_at_the_depth_limit(
    pipeline, db, s3_client, settings, monkeypatch
):
    monkeypatch.setenv("IMAGEFLOW_MAX_HANDOFF_DEPTH", "2")
    pipeline.resources["settings"] = settings_now()
    a = pipeline.submit(handing_off("wf_placeholder"))
    b_id = put_workflow(db, handing_off(a.workflow_id))
    hand_off_to(db, a.workflow_id, b_id)  # A -> B -> A -> ...

    chain = [a.job_id]
    for depth in (1, 2):  # the job at the limit is still started
        assert pipeline.run(chain[-1]).success
        chain.append(triggered_job_id(pipeline, s3_client, settings, chain[-1]))
        assert pipeline.job(chain[-1])["handoff_depth"] == depth
    assert [pipeline.job(job_id)["workflow_id"] for job_id in chain] == [a.workflow_id, b_id, a.workflow_id]

    assert not pipeline.run(chain[-1]).success  # its handoff would start a job at depth 3
    row = pipeline.job(chain[-1])
    reason = (
        "handoff depth 3 would exceed the limit of 2 (IMAGEFLOW_MAX_HANDOFF_DEPTH): "
        f"job {chain[-1]} was itself started by 2 handoff(s) in a row; no job started"
    )
    assert (row["status"], row["error_message"]) == ("failed", f"Step 2 (Pass on) failed: {reason}")
    assert row["error_type"] == "HandoffTooDeep"
    steps = read_json_object(s3_client, settings.bucket, row["execution_steps_s3_key"])
    assert steps[2]["output"] == {"triggered_job_id": None, "success": False, "error": reason}
    assert sorted(r["job_id"]["S"] for r in all_rows(db, db.jobs_table)) == sorted(chain)
    assert len(all_rows(db, db.submissions_table)) == len(chain)


def test_a_chain_exactly_at_the_depth_limit_completes(pipeline, db, s3_client, settings, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_MAX_HANDOFF_DEPTH", "2")
    pipeline.resources["settings"] = settings_now()
    last_id = put_workflow(db, TARGET)
    middle_id = put_workflow(db, handing_off(last_id))
    first = pipeline.submit(handing_off(middle_id))  # first -> middle -> last: the last job is at depth 2

    chain = [first.job_id]
    for _ in range(2):
        assert pipeline.run(chain[-1]).success
        chain.append(triggered_job_id(pipeline, s3_client, settings, chain[-1]))
    assert pipeline.run(chain[-1]).success
    last = pipeline.job(chain[-1])
    assert (last["workflow_id"], last["handoff_depth"], last["status"]) == (last_id, 2, "completed")
    assert [pipeline.job(job_id)["status"] for job_id in chain] == ["completed"] * 3


def test_a_depth_that_is_no_count_is_refused_rather_than_read_as_0(pipeline, db):
    target_id = put_workflow(db, TARGET)
    job = pipeline.submit(handing_off(target_id))
    db.update_item(db.jobs_table, {"job_id": job.job_id}, set_values={"handoff_depth": "three"})
    assert not pipeline.run(job.job_id).success
    row = pipeline.job(job.job_id)
    reason = f"job {job.job_id} has an invalid handoff_depth 'three'; no job started"
    assert row["error_message"] == f"Step 2 (Pass on) failed: {reason}"
    assert row["error_type"] == "HandoffRefused"
    assert jobs_of_workflow(db, target_id) == []


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "IMAGEFLOW_MAX_HANDOFF_DEPTH must be a positive integer, got 0"),
        ("two", "IMAGEFLOW_MAX_HANDOFF_DEPTH must be an integer, got 'two'"),
    ],
)
def test_a_bad_depth_limit_is_refused_when_settings_are_read(monkeypatch, value, message):
    monkeypatch.setenv("IMAGEFLOW_MAX_HANDOFF_DEPTH", value)
    with pytest.raises(ValueError) as raised:
        Settings.from_env()
    assert str(raised.value) == message


def test_the_depth_limit_defaults_to_5(monkeypatch):
    monkeypatch.delenv("IMAGEFLOW_MAX_HANDOFF_DEPTH", raising=False)
    assert Settings.from_env().max_handoff_depth == 5
