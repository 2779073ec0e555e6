"""One bad record per kind of damage (30 distinct jobs) among good jobs: each bad job ends `failed` with the
message that names its own damage, the sensor keeps ticking, and the good jobs complete. A control job
rewritten the same way but left undamaged completes: the extra step and the rewrite are valid on their own."""

import dagster as dg
import pytest
from dagster._core.events import DagsterEventType

from imageflow_dagster.resources.dynamodb import deserialize_item
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


def _job_id_from_original(make):
    """A bad job id derived from the job's own id, so two jobs with this damage never share a row."""

    def apply(records):
        records["job"]["job_id"] = make(records["original_job_id"])

    return apply


# name: (damage, the job's error_message; {job}, {workflow}, {submission}, {form} are the ids of its records)
MUTATIONS = {
    "job without workflow_id": (_drop("job", "workflow_id"), "Job {job} is malformed: workflow_id: Field required"),
    "job without tenant_id": (_drop("job", "tenant_id"), "Job {job} is malformed: tenant_id: Field required"),
    "dangling workflow id": (_set("job", "workflow_id", "wf_does_not_exist"), "Workflow wf_does_not_exist not found"),
    "missing submission": (_delete("submission"), "Submission {submission} not found"),
    # A missing form row is no damage (the seed treats the form as optional): test_webhook_steps.py runs one.
    "webhook and handoff in one step": (
        _workflow_change(lambda w: w["steps"][0].update(webhook_url="https://x.test/h", handoff_workflow_id="wf_x")),
        "Workflow {workflow} step 1 (Brand Images) has both webhook_url and handoff_workflow_id; a step is either a "
        "webhook or a handoff, not both",
    ),
    "tenant id with slash": (
        _set("job", "tenant_id", "tenant/other"),
        "Invalid tenant_id: tenant_id 'tenant/other' contains a path separator",
    ),
    "tenant id with dot-dot": (_set("job", "tenant_id", ".."), "Invalid tenant_id: tenant_id '..' contains '..'"),
    "tenant id with control char": (
        _set("job", "tenant_id", "ten\x07ant"),
        "Invalid tenant_id: tenant_id contains control or invisible characters",
    ),
    "tenant id with RTL override": (
        _set("job", "tenant_id", "ten\u202eant"),
        "Invalid tenant_id: tenant_id contains control or invisible characters",
    ),
    "tenant id too long": (
        _set("job", "tenant_id", "t" * 500),
        "Invalid tenant_id: tenant_id is longer than 128 characters",
    ),
    "tenant id a number": (
        _set("job", "tenant_id", 12345),
        "Job {job} is malformed: tenant_id: Input should be a valid string",
    ),
    "job id with dot-dot and slash": (
        _job_id_from_original(lambda job_id: job_id.replace("job_", "job_../../")),
        "Invalid job_id: job_id '{job}' contains a path separator",
    ),
    "job id with comma": (
        _job_id_from_original(lambda job_id: f"{job_id},b"),
        "Invalid job_id: job_id '{job}' contains a comma or surrounding whitespace",
    ),
    "no steps": (_workflow_change(lambda w: w.update(steps=[])), "Workflow {workflow} has no steps configured"),
    "steps not a list": (
        _workflow_change(lambda w: w.update(steps="step one")),
        "Workflow {workflow} is malformed: steps: Input should be a valid list",
    ),
    "step not an object": (
        _workflow_change(lambda w: w.update(steps=[42])),
        "Workflow {workflow} is malformed: steps.0: Input should be a valid dictionary or instance of WorkflowStep",
    ),
    "step_order not a number": (
        _step_change("step_order", "first"),
        "Workflow {workflow} is malformed: steps.0.step_order: Value error, step_order must be a whole number, got 'first'",
    ),
    "step_order a boolean": (
        _step_change("step_order", True),
        "Workflow {workflow} is malformed: steps.0.step_order: Value error, step_order must be a number, got a boolean",
    ),
    "unknown step type": (
        _step_change("step_type", "shell"),
        "Workflow {workflow} step 1 (Brand Images) has unsupported step_type 'shell'; imageflow runs ai_generation "
        "steps (text or image) and webhook steps",
    ),
    "cyclic depends_on": (
        _workflow_change(
            lambda w: w.update(steps=[text_step("A", "a", 0, depends_on=[1]), text_step("B", "b", 1, depends_on=[0])])
        ),
        "Invalid workflow dependencies: cycle among steps 1 (A), 2 (B)",
    ),
    "self dependency": (
        _step_change("depends_on", [0]),
        "Invalid workflow dependencies: step 1 (Brand Images) depends on itself",
    ),
    "dangling dependency": (
        _step_change("depends_on", [9]),
        "Invalid workflow dependencies: step 1 (Brand Images) depends on unknown step 9",
    ),
    "huge instructions": (
        _step_change("instructions", "x" * 150_000),
        "Workflow {workflow} step 1 (Brand Images) has instructions longer than 100000 characters",
    ),
    "huge step name": (
        _step_change("step_name", "n" * 300),
        "Workflow {workflow} step 1 has a name longer than 200 characters",
    ),
    "instructions not text": (
        _step_change("instructions", {"text": "hi"}),
        "Workflow {workflow} is malformed: steps.0.instructions: Value error, expected text, got dict",
    ),
    "image compression out of range": (
        _step_change("tools", [{"type": "image_generation", "compression": 500}]),
        "Workflow {workflow} step 1 (Brand Images) has an invalid image_generation tool: compression: Value error, "
        "image tool compression must be 0-100, got 500",
    ),
    "image format gif": (
        _step_change("tools", [{"type": "image_generation", "format": "gif"}]),
        "Workflow {workflow} step 1 (Brand Images) has an invalid image_generation tool: format: Value error, "
        "image tool format must be png, jpeg or webp, got 'gif'",
    ),
    "tools not a list of tools": (
        _step_change("tools", 7),
        "Workflow {workflow} is malformed: steps.0.tools.0.str: Input should be a valid string",
    ),
    "submission data not a map": (
        _set("submission", "submission_data", "name=Ada"),
        "Submission {submission} is malformed: submission_data: Input should be a valid dictionary",
    ),
    "huge submission": (
        _set("submission", "submission_data", {"essay": "y" * 250_000}),
        "Submission {submission} is larger than 200000 characters",
    ),
}
CONTROL = None  # the same rewrite, no damage


def _good_records(pipeline) -> dict:
    job = pipeline.submit(single_image_workflow("Create 1 image."))
    db = pipeline.db
    return {
        "job": db.get_item(db.jobs_table, {"job_id": job.job_id}),
        "workflow": db.get_item(db.workflows_table, {"workflow_id": job.workflow_id}),
        "submission": db.get_item(db.submissions_table, {"submission_id": job.submission_id}),
        "form": db.get_item(db.forms_table, {"form_id": job.form_id}),
        "original_job_id": job.job_id,
        "ids": {"workflow": job.workflow_id, "submission": job.submission_id, "form": job.form_id},
    }


def _write_job(pipeline, name: str | None) -> tuple[str, str | None]:
    """Rewrites a submitted job with one extra image step and the damage `name` (none for CONTROL); returns
    the job id and the error message the damage must produce."""
    records = _good_records(pipeline)
    records["workflow"]["steps"].append(image_step("Extra", "Create 1 image.", 1))
    expected = None
    if name is not CONTROL:
        damage, expected = MUTATIONS[name]
        damage(records)
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
    job_id = records["job"]["job_id"]
    return job_id, expected and expected.format(job=job_id, **records["ids"])


def _key(table: str, db, value: str) -> dict:
    name = {db.workflows_table: "workflow_id", db.submissions_table: "submission_id", db.forms_table: "form_id"}[table]
    return {name: {"S": value}}


def _statuses(db) -> dict[str, str]:
    items = db.get_client().scan(TableName=db.jobs_table, ConsistentRead=True)["Items"]
    return {row["job_id"]: row["status"] for row in map(deserialize_item, items)}


def test_every_kind_of_bad_record_fails_alone_with_its_own_message(pipeline, db):
    bad = {}
    for name in MUTATIONS:
        job_id, expected = _write_job(pipeline, name)
        bad[job_id] = (name, expected)
    control, _ = _write_job(pipeline, CONTROL)
    good = [pipeline.submit(single_image_workflow("Create 1 image.")).job_id for _ in range(2)]
    assert len(MUTATIONS) == 30 and len(bad) == 30  # one job per kind of damage, no two on the same row
    assert len(_statuses(db)) == 33

    with dg.instance_for_test() as instance:
        ticks, cursor = [], None
        for _ in range(3):  # the sensor keeps ticking; nothing here may raise
            ticks.append(tick(instance, db, cursor))
            cursor = ticks[-1].cursor
    assert sorted(r.partition_key for r in ticks[0].run_requests) == sorted([*good, control])
    assert ticks[1].run_requests == [] and ticks[2].run_requests == []
    for request in ticks[0].run_requests:  # what the daemon would launch, with the sensor's claim
        assert pipeline.run(request.partition_key, tags=request.tags).success

    statuses = _statuses(db)
    assert sorted(statuses.values()) == ["completed"] * 3 + ["failed"] * 30
    for job_id, (name, expected) in bad.items():
        row = pipeline.job(job_id)
        assert (row["status"], row["error_type"]) == ("failed", "InvalidJobRecord"), name
        assert row["error_message"] == expected, name

    outputs = [a["artifact_name"] for a in pipeline.artifacts(control) if a["artifact_type"] == "step_output"]
    assert sorted(outputs) == ["step_1_brand_images.json", "step_2_extra.json"]  # the control ran the extra step


def test_bad_record_materialized_directly_fails_with_the_same_message(pipeline):
    job_id, expected = _write_job(pipeline, "cyclic depends_on")
    result = pipeline.run(job_id)
    assert not result.success
    assert any(e.event_type == DagsterEventType.STEP_FAILURE for e in result.all_events)
    assert pipeline.job(job_id)["error_message"] == expected
