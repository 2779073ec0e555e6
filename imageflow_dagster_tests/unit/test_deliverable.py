"""flow/deliverable.py: which steps deliver, what the final document holds and its type, and the order of
`job.artifacts`."""

import json

import pytest

from imageflow_dagster.flow.deliverable import (
    deliverable_indices,
    document_for,
    final_document,
    final_output_entry,
    ordered_artifact_ids,
)
from imageflow_dagster.models import Job, Submission, Workflow
from imageflow_dagster.models.job_inputs import JobInputs
from imageflow_dagster.models.pipeline import StoredObject
from imageflow_dagster.models.workflow import WorkflowStep
from imageflow_dagster.steps.base import StepRun
from imageflow_dagster.steps.webhook import webhook_data
from imageflow_dagster_tests.unit.plans import JOB, image_step, job_plan, rendered, text_step


def _steps(*specs: dict) -> list[WorkflowStep]:
    return [WorkflowStep(step_name=f"s{i}", **spec) for i, spec in enumerate(specs)]


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        (
            ({}, {"is_deliverable": True}, {"is_deliverable": "true"}),
            [1, 2],
        ),  # marked steps win, however stored
        (({"step_order": 0}, {"step_order": 2}, {"step_order": 1}), [1]),  # else the highest step_order
        (({"step_order": "5"}, {"step_order": 5}, {"step_order": 1}), [0, 1]),  # ties all deliver
        (({}, {}, {}), [2]),  # no step_order: array position
        (({"is_deliverable": False}, {}), [1]),
    ],
)
def test_deliverable_steps_are_the_marked_ones_else_the_last_in_order(specs, expected):
    assert deliverable_indices(_steps(*specs)) == expected


def test_a_failed_job_gets_no_final_document():
    failed = text_step(1, status="failed", error="boom")
    assert final_document(job_plan(text_step(0), failed, deliverables=(0,)), []) is None


def test_the_deliverable_steps_texts_are_joined_in_workflow_order():
    plan = job_plan(
        text_step(0, output="# Part one"),
        text_step(1, output="ignored"),
        text_step(2, output="# Part two"),
        deliverables=(0, 2),
    )
    final = final_document(plan, [])
    assert (final.name, final.artifact_type) == ("final.md", "markdown_final")
    assert final.body == b"# Part one\n\n# Part two"


def test_when_only_an_image_step_is_marked_the_last_text_delivers():
    images = image_step(1)
    plan = job_plan(text_step(0, output="# Brief"), images, deliverables=(1,))
    assert final_document(plan, rendered(images)).body == b"# Brief"


def test_a_job_of_images_only_delivers_its_image_json():
    images = image_step(0, ("logo",))
    final = final_document(job_plan(images, deliverables=(0,)), rendered(images))
    assert final.artifact_type == "json_final"
    assert [i["label"] for i in json.loads(final.body)["images"]] == ["logo"]


def test_a_job_without_output_gets_no_final_document():
    assert final_document(job_plan(text_step(0, output=""), deliverables=(0,)), []) is None


@pytest.mark.parametrize(
    ("content", "last_step", "expected"),
    [
        ('  {"a": 1} ', "Report", ("final.json", "application/json", b'{"a": 1}')),
        ("[1, 2]", "Report", ("final.json", "application/json", b"[1, 2]")),
        (
            "<!DOCTYPE html><html><body>x</body></html>",
            "Report",
            ("final.html", "text/html", b"<!DOCTYPE html><html><body>x</body></html>"),
        ),
        (
            "Here:\n```html\n<section>hi</section>\n```\nEnjoy",
            "Report",
            ("final.html", "text/html", b"<section>hi</section>"),
        ),
        (
            "Intro <html><body>x</body></html> outro",
            "Report",
            ("final.html", "text/html", b"<html><body>x</body></html>"),
        ),
        ("<section>hi</section>", "Landing HTML", ("final.html", "text/html", b"<section>hi</section>")),
        ("# Title\n\ntext\n", "Report", ("final.md", "text/markdown", b"# Title\n\ntext\n")),
        ('"a JSON string"', "Report", ("final.md", "text/markdown", b'"a JSON string"')),
    ],
)
def test_the_final_type_comes_from_the_content_then_the_last_steps_name(content, last_step, expected):
    final = document_for(content, last_step)
    assert (final.name, final.content_type, final.body) == expected


def _stored(kind: str, step_index: int, key: str) -> StoredObject:
    return StoredObject(
        kind=kind,
        step_index=step_index,
        key=key,
        url=f"https://b/{key}",
        s3_url=f"s3://b/{key}",
        content_type="x",
        size_bytes=1,
        name=key,
    )


def test_job_artifacts_list_the_report_the_final_the_images_then_the_other_outputs():
    plan = job_plan(text_step(0), image_step(1), text_step(2), text_step(3), deliverables=(2,))
    objects = [
        _stored("step_output", 0, "out0"),
        _stored("step_output", 2, "out2"),
        _stored("step_output", 3, "out3"),
        _stored("image", 1, "img1"),
        _stored("markdown_final", 3, "final"),
    ]
    ids = {o.key: f"art_{o.key}" for o in objects}
    assert ordered_artifact_ids(plan, objects, ids) == [
        "art_out2",
        "art_final",
        "art_img1",
        "art_out0",
        "art_out3",
    ]


def test_without_a_deliverable_output_the_last_output_is_the_report():
    plan = job_plan(text_step(0), text_step(1), deliverables=(5,))
    objects = [_stored("step_output", 0, "out0"), _stored("step_output", 1, "out1")]
    assert ordered_artifact_ids(plan, objects, {"out0": "a0", "out1": "a1"}) == ["a1", "a0"]


def test_the_final_output_entry_points_at_the_final_documents_artifact():
    entry = final_output_entry(4, _stored("html_final", 2, "t/jobs/j/final.html"), "art_final")
    assert (entry["step_name"], entry["step_order"], entry["step_type"]) == (
        "Final Output",
        4,
        "final_output",
    )
    assert entry["input"] == {"artifact_type": "html_final", "filename": "t/jobs/j/final.html"}
    assert entry["output"] == {"artifact_id": "art_final", "public_url": "https://b/t/jobs/j/final.html"}


def test_a_webhook_step_sends_the_deliverables_the_final_document_is_made_of():
    """One rule (the seed's) for both: a report and a webhook sharing the last step_order both deliver, so the
    webhook's payload carries the report it depends on as the deliverable."""
    steps = _steps(
        {"step_order": 0},
        {"step_order": 1},
        {"step_order": 1, "webhook_url": "https://hooks.example/x"},
    )
    job = Job(job_id="job_1", tenant_id="t", workflow_id="wf_1", submission_id="sub_1", status="processing")
    workflow, submission = Workflow(workflow_id="wf_1", steps=steps), Submission(submission_id="sub_1")
    inputs = JobInputs(job, workflow, submission, None, dependencies={0: [], 1: [0], 2: [0, 1]})
    done = {0: text_step(0, output="# Notes"), 1: text_step(1, output="# Report")}
    data = webhook_data(StepRun(inputs, JOB, {}, 2, done, tools=None))
    assert deliverable_indices(steps) == [1, 2]
    assert [o.output for o in data.deliverables] == ["# Report"]
