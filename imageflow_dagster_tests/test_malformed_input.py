"""50 generated bad records among good jobs: each bad job ends `failed` with a readable message, the sensor keeps
ticking, and the good jobs complete."""

import random

import dagster as dg
import pytest
from dagster._core.events import DagsterEventType

from imageflow_dagster_tests.test_sensor import tick
from imageflow_dagster_tests.workflows import image_step, single_image_workflow, text_step

pytestmark = pytest.mark.faults


def _workflow_change(change):
    def apply(records):
        change(records["workflow"])

    return apply


def _set(record: str, field: str, value):
    def apply(records):
        records[record][field] = value

    return apply


def _drop(record: str, field: str):
    def apply(records):
        records[record].pop(field, None)

    return apply


def _delete(record: str):
    def apply(records):
        records[record] = None

    return apply


def _step_change(field: str, value, index: int = 0):
    def apply(records):
        records["workflow"]["steps"][index][field] = value

    return apply


MUTATIONS = {
    "job without workflow_id": _drop("job", "workflow_id"),
    "job without tenant_id": _drop("job", "tenant_id"),
    "dangling workflow id": _set("job", "workflow_id", "wf_does_not_exist"),
    "missing submission": _delete("submission"),
    "missing form": _delete("form"),
    "tenant id with slash": _set("job", "tenant_id", "tenant/other"),
    "tenant id with dot-dot": _set("job", "tenant_id", ".."),
    "tenant id with control char": _set("job", "tenant_id", "ten\x07ant"),
    "tenant id with RTL override": _set("job", "tenant_id", "ten\u202eant"),
    "tenant id too long": _set("job", "tenant_id", "t" * 500),
    "tenant id a number": _set("job", "tenant_id", 12345),
    "job id with dot-dot and slash": _set("job", "job_id", "job_../../etc"),
    "job id with comma": _set("job", "job_id", "job_a,b"),
    "no steps": _workflow_change(lambda w: w.update(steps=[])),
    "steps not a list": _workflow_change(lambda w: w.update(steps="step one")),
    "step not an object": _workflow_change(lambda w: w.update(steps=[42])),
    "step_order not a number": _step_change("step_order", "first"),
    "step_order a boolean": _step_change("step_order", True),
    "unknown step type": _step_change("step_type", "webhook"),
    "cyclic depends_on": _workflow_change(
        lambda w: w.update(steps=[text_step("A", "a", 0, depends_on=[1]), text_step("B", "b", 1, depends_on=[0])])
    ),
    "self dependency": _step_change("depends_on", [0]),
    "dangling dependency": _step_change("depends_on", [9]),
    "huge instructions": _step_change("instructions", "x" * 150_000),
    "huge step name": _step_change("step_name", "n" * 300),
    "instructions not text": _step_change("instructions", {"text": "hi"}),
    "image compression out of range": _step_change("tools", [{"type": "image_generation", "compression": 500}]),
    "image format gif": _step_change("tools", [{"type": "image_generation", "format": "gif"}]),
    "tools not a list of tools": _step_change("tools", 7),
    "submission data not a map": _set("submission", "submission_data", "name=Ada"),
    "huge submission": _set("submission", "submission_data", {"essay": "y" * 250_000}),
}


def _good_records(pipeline) -> dict:
    job = pipeline.submit(single_image_workflow("Create 1 image."))
    db = pipeline.db
    return {
        "job": db.get_item(db.jobs_table, {"job_id": job.job_id}),
        "workflow": db.get_item(db.workflows_table, {"workflow_id": job.workflow_id}),
        "submission": db.get_item(db.submissions_table, {"submission_id": job.submission_id}),
        "form": db.get_item(db.forms_table, {"form_id": job.form_id}),
        "original_job_id": job.job_id,
    }


def _write_bad_job(pipeline, name: str, seed: int) -> str:
    records = _good_records(pipeline)
    rng = random.Random(seed)
    records["workflow"]["steps"].append(image_step(f"Extra {rng.randint(1, 99)}", "Create 1 image.", 1))
    MUTATIONS[name](records)
    db = pipeline.db
    db.get_client().delete_item(TableName=db.jobs_table, Key={"job_id": {"S": records["original_job_id"]}})
    for table, record, key in (
        (db.workflows_table, "workflow", records["job"].get("workflow_id")),
        (db.submissions_table, "submission", records["job"]["submission_id"]),
        (db.forms_table, "form", records["submission"] and records["submission"].get("form_id")),
    ):
        if records[record] is None:
            db.get_client().delete_item(TableName=table, Key=_key(table, db, key))
        elif record == "workflow" and key == records["workflow"]["workflow_id"]:
            db.put_item(table, records[record])
        elif record != "workflow":
            db.put_item(table, records[record])
    db.put_item(db.jobs_table, records["job"])
    return records["job"]["job_id"]


def _key(table: str, db, value: str) -> dict:
    name = {db.workflows_table: "workflow_id", db.submissions_table: "submission_id", db.forms_table: "form_id"}[table]
    return {name: {"S": value}}


def test_fifty_bad_records_fail_alone_and_good_jobs_complete(pipeline, db):
    names = list(MUTATIONS)
    bad = {_write_bad_job(pipeline, names[i % len(names)], i): names[i % len(names)] for i in range(50)}
    good = [pipeline.submit(single_image_workflow("Create 1 image.")).job_id for _ in range(3)]

    with dg.instance_for_test() as instance:
        launched, cursor = [], None
        for _ in range(3):  # the sensor keeps ticking; nothing here may raise
            result = tick(instance, db, cursor)
            launched += result.run_requests
            cursor = result.cursor
    assert sorted(r.partition_key for r in launched) == sorted(good)
    for request in launched:  # what the daemon would launch, with the sensor's claim
        assert pipeline.run(request.partition_key, tags=request.tags).success
        assert pipeline.job(request.partition_key)["status"] == "completed"

    for job_id, name in bad.items():
        row = pipeline.job(job_id)
        assert row["status"] == "failed", name
        message = row["error_message"]
        assert 10 < len(message) < 400 and "Traceback" not in message, (name, message)
        assert row["error_type"] == "InvalidJobRecord", (name, row["error_type"])


def test_bad_record_materialized_directly_fails_with_the_same_message(pipeline):
    job_id = _write_bad_job(pipeline, "cyclic depends_on", 0)
    result = pipeline.run(job_id)
    assert not result.success
    assert any(e.event_type == DagsterEventType.STEP_FAILURE for e in result.all_events)
    assert pipeline.job(job_id)["error_message"].startswith("Invalid workflow dependencies: cycle among steps")
