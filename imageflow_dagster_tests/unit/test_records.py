"""flow/records.py: step outcomes, step output files, usage sums and the execution-steps list, from plan
values."""

import json

import pytest

from imageflow_dagster.flow.records import (
    execution_steps,
    image_usage,
    output_artifact_id,
    step_outcome,
    step_output_document,
    unique_replacements,
)
from imageflow_dagster.ids import stable_id
from imageflow_dagster_tests.unit.plans import JOB, image_step, job_plan, rendered, text_step, usage


def test_a_step_that_failed_planning_fails_with_the_seeds_message():
    step = text_step(2, name="Summary", status="failed", error="model refused", error_type="ModelRefused")
    outcome = step_outcome(step, [])
    assert (outcome.success, outcome.error_type) == (False, "ModelRefused")
    assert outcome.error == "Step 3 (Summary) failed: model refused"


def test_a_failed_image_fails_its_step_naming_the_first_and_counting_the_rest():
    step = image_step(1, ("logo", "banner", "icon"))
    images = rendered(step, "failed", error="content policy", error_type="ImageFailed")
    outcome = step_outcome(step, images)
    assert outcome.error == "Step 2 (Images) failed: image 1 (logo): content policy (2 more image(s) failed)"
    assert outcome.error_type == "ImageFailed"


def test_an_image_step_fails_only_when_every_image_was_blocked():
    step = image_step(0, ("a", "b"))
    all_blocked = rendered(step, "blocked", error="moderation_blocked")
    outcome = step_outcome(step, all_blocked)
    assert (outcome.success, outcome.error_type) == (False, "ModerationBlocked")
    assert (
        outcome.error
        == "Step 1 (Images) failed: all 2 image(s) were blocked by moderation: moderation_blocked"
    )
    one_blocked = [*rendered(step)[:1], *all_blocked[1:]]
    assert step_outcome(step, one_blocked).success


@pytest.mark.parametrize(
    ("output", "name", "expected"),
    [
        ('{"headline": "Hi"}', "Report", ("step_1_report.json", "application/json")),
        ("  [1, 2]  ", "Report", ("step_1_report.json", "application/json")),
        ("<!DOCTYPE html><html></html>", "Report", ("step_1_report.html", "text/html")),
        ("<p>fragment</p>", "Landing HTML", ("step_1_landing_html.html", "text/html")),
        ("# Title", "Report", ("step_1_report.md", "text/markdown")),
        ('"just a string"', "Report", ("step_1_report.md", "text/markdown")),
        ("text", "Ünïcode / Step!!", ("step_1_n_code_step.md", "text/markdown")),
        ("text", "???", ("step_1_step.md", "text/markdown")),
    ],
)
def test_a_text_steps_output_file_is_named_and_typed_by_its_content_then_its_name(output, name, expected):
    file_name, body, content_type = step_output_document(text_step(0, name=name, output=output), [])
    assert (file_name, content_type) == expected
    assert body == output.encode()


def test_a_step_without_output_has_no_output_file():
    assert step_output_document(text_step(0, output=""), []) is None
    step = image_step(0)
    assert step_output_document(step, rendered(step, "blocked", error="x")) is None


def test_an_image_steps_output_file_lists_only_stored_images():
    step = image_step(0, ("kept", "reused", "blocked"))
    kept, reused, blocked = rendered(step)
    images = [
        kept,
        reused.model_copy(update={"outcome": "reused"}),
        blocked.model_copy(update={"outcome": "blocked"}),
    ]
    name, body, content_type = step_output_document(step, images)
    document = json.loads(body)
    assert (name, content_type) == ("step_1_images.json", "application/json")
    assert [i["label"] for i in document["images"]] == ["kept", "reused"]
    assert document["image_model"] == "gpt-image-1" and document["image_config"] == {"size": "auto"}


def test_output_artifact_ids_are_known_before_the_row_exists_and_only_for_steps_that_made_output():
    report = text_step(0, output="# Report")
    assert output_artifact_id(JOB, report) == stable_id(
        "art", "job_1", "tenant_1/jobs/job_1/step_1_report.md"
    )
    assert output_artifact_id(JOB, image_step(1)) == stable_id(
        "art", "job_1", "tenant_1/jobs/job_1/step_2_images.json"
    )
    assert output_artifact_id(JOB, text_step(0, output=None)) is None
    assert output_artifact_id(JOB, text_step(0, status="failed", error="x")) is None
    assert output_artifact_id(JOB, image_step(1, labels=())) is None


def test_image_usage_adds_every_paid_image_under_the_model_that_rendered_them():
    step = image_step(0, ("a", "b", "c"))
    a, b, c = rendered(step, model="gpt-image-1.5")
    images = [
        a.model_copy(update={"usage": usage("gpt-image-1.5", 10, 100, 0.25)}),
        b.model_copy(update={"usage": usage("gpt-image-1.5", 20, 200, 0.5)}),
        c,  # reused: nothing paid
    ]
    total = image_usage(step, images)
    assert (total.model, total.calls, total.input_tokens, total.output_tokens) == (
        "gpt-image-1.5",
        2,
        30,
        300,
    )
    assert total.cost_usd == 0.75
    assert image_usage(step, [c]) is None


def test_a_model_swap_is_reported_once_in_the_order_first_made():
    swap = {"requested": "gpt-image-1", "used": "gpt-image-1.5", "reason": "shut down"}
    other = {"requested": "gpt-5", "used": "gpt-5.2", "reason": "shut down"}
    assert unique_replacements([swap, dict(swap), other, dict(swap)]) == [swap, other]


def test_execution_steps_start_with_the_form_and_follow_workflow_order():
    report = text_step(1, name="Report", output="# Done", usage=usage("gpt-5", 100, 50, 0.001))
    entry = {
        "step_name": "Notify",
        "step_order": 3,
        "step_type": "webhook",
        "timestamp": "t",
        "duration_ms": 5,
    }
    notify = text_step(2, name="Notify", kind="webhook", entry=entry)
    images = image_step(0)
    records = execution_steps(job_plan(report, notify, images), rendered(images), {}, {})
    assert [(r["step_name"], r["step_order"], r["step_type"]) for r in records] == [
        ("Form Submission", 0, "form_submission"),
        ("Images", 1, "ai_generation"),
        ("Report", 2, "ai_generation"),
        ("Notify", 3, "webhook"),
    ]
    assert records[0]["input"] == records[0]["output"] == {"Name": "Ada"}
    usage_info = records[2]["usage_info"]
    assert (usage_info["total_tokens"], usage_info["cost_usd"], usage_info["service_type"]) == (
        150,
        0.001,
        "openai_worker_report",
    )


def test_an_image_steps_record_counts_outcomes_and_adds_planner_and_image_cost():
    step = image_step(0, ("a", "b"), usage=usage("gpt-5", 10, 5, 0.002))
    made, blocked = rendered(step)
    images = [
        made.model_copy(update={"usage": usage("gpt-image-1", 8, 1000, 0.04), "model": "gpt-image-1"}),
        blocked.model_copy(update={"outcome": "blocked", "error": "moderation_blocked"}),
    ]
    (_, record) = execution_steps(job_plan(step), images, {}, {})
    info = record["usage_info"]
    assert (info["images_generated"], info["images_blocked"], info["cost_usd"]) == (1, 1, 0.042)
    assert record["success"] is True and record["image_urls"] == [made.request.url]
    assert [i["status"] for i in record["images"]] == ["generated", "blocked"]


def test_a_failed_steps_record_carries_the_error_and_its_output_is_the_error_text():
    step = text_step(0, name="Report", status="failed", error="timeout", error_type="Timeout")
    (_, record) = execution_steps(job_plan(step), [], {}, {})
    assert record["success"] is False and record["error_type"] == "Timeout"
    assert record["error"] == record["output"] == "Step 1 (Report) failed: timeout"
