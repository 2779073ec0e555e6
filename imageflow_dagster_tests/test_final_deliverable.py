"""The final deliverable (moto, the local OpenAI server, real `materialize`): final.{md,html,json}, its artifact row,
`output_url`, the order of `job.artifacts` and the `final_output` execution step; none for a failed job."""

from decimal import Decimal

import pytest

from imageflow_dagster.flow.deliverable import deliverable_indices, document_for
from imageflow_dagster.models.workflow import WorkflowStep
from imageflow_dagster_tests.conftest import DEFAULT_ANSWERS, read_json_object
from imageflow_dagster_tests.workflows import mixed_workflow, text_step


def two_text_steps(report_instructions: str = "Write the report.") -> dict:
    return {
        "workflow_name": "Report",
        "steps": [
            text_step("Research", "Research the company.", 0),
            text_step("Write Report", report_instructions, 1),
        ],
    }


def s3_body(s3_client, bucket: str, key: str) -> tuple[bytes, str]:
    obj = s3_client.get_object(Bucket=bucket, Key=key)
    return obj["Body"].read(), obj["ContentType"]


def artifacts_by_id(pipeline, job_id: str) -> dict[str, dict]:
    return {row["artifact_id"]: row for row in pipeline.artifacts(job_id)}


def execution_steps(pipeline, s3_client, settings, job_id: str) -> list[dict]:
    return read_json_object(s3_client, settings.bucket, pipeline.job(job_id)["execution_steps_s3_key"])


def test_output_url_names_the_final_artifact_row_and_its_object(pipeline, settings, s3_client):
    # Numbers come back from DynamoDB as Decimal; the deliverable and its records must still serialise.
    job = pipeline.submit(two_text_steps(), answers={**DEFAULT_ANSWERS, "team_size": Decimal("12")})
    assert pipeline.run(job.job_id).success

    row = pipeline.job(job.job_id)
    assert row["status"] == "completed"
    rows = artifacts_by_id(pipeline, job.job_id)
    [final] = [a for a in rows.values() if a["artifact_type"] == "markdown_final"]
    assert row["output_url"] == final["public_url"]
    assert final["s3_key"] == f"{job.tenant_id}/jobs/{job.job_id}/final.md" and final["artifact_name"] == "final.md"
    body, content_type = s3_body(s3_client, settings.bucket, final["s3_key"])
    assert content_type == "text/markdown" and final["file_size_bytes"] == len(body)
    steps = execution_steps(pipeline, s3_client, settings, job.job_id)
    report_text = steps[2]["output"]
    assert body.decode() == report_text and report_text.startswith("# ")  # the last step delivers, alone

    # job.artifacts: the report (the deliverable step's output), the final, then the other step outputs.
    report = next(a for a in rows.values() if a["artifact_name"] == "step_2_write_report.md")
    research = next(a for a in rows.values() if a["artifact_name"] == "step_1_research.md")
    assert row["artifacts"] == [report["artifact_id"], final["artifact_id"], research["artifact_id"]]

    last = steps[-1]
    assert [s["step_type"] for s in steps] == ["form_submission", "ai_generation", "ai_generation", "final_output"]
    assert last["step_name"] == "Final Output" and last["step_order"] == 3
    assert last["input"] == {"artifact_type": "markdown_final", "filename": "final.md"}
    assert last["output"] == {"artifact_id": final["artifact_id"], "public_url": final["public_url"]}
    assert last["artifact_id"] == final["artifact_id"] and last["duration_ms"] == 0
    assert steps[0]["input"]["Team Size"] == 12


def test_marked_deliverable_steps_are_joined_in_order(pipeline, settings, s3_client):
    workflow = {
        "workflow_name": "Marked",
        "steps": [
            text_step("Intro", "Write an intro.", 0, is_deliverable="true"),
            text_step("Notes", "Write notes.", 1, is_deliverable=False),
            text_step("Outro", "Write an outro.", 2, is_deliverable=Decimal(1)),
        ],
    }
    job = pipeline.submit(workflow)
    assert pipeline.run(job.job_id).success
    steps = execution_steps(pipeline, s3_client, settings, job.job_id)
    body, _ = s3_body(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/final.md")
    assert body.decode() == f"{steps[1]['output']}\n\n{steps[3]['output']}"
    rows = artifacts_by_id(pipeline, job.job_id)
    outro = next(a for a in rows.values() if a["artifact_name"] == "step_3_outro.md")
    assert pipeline.job(job.job_id)["artifacts"][0] == outro["artifact_id"]  # the last deliverable step's


@pytest.mark.parametrize(
    "marker, name, artifact_type, content_type",
    [
        ("[[text:html]]", "final.html", "html_final", "text/html"),
        ("[[text:json]]", "final.json", "json_final", "application/json"),
        ("", "final.md", "markdown_final", "text/markdown"),
    ],
)
def test_the_content_decides_html_json_or_markdown(pipeline, settings, s3_client, marker, name, artifact_type, content_type):
    job = pipeline.submit(two_text_steps(), answers={**DEFAULT_ANSWERS, "notes": f"Plain notes {marker}"})
    assert pipeline.run(job.job_id).success
    rows = artifacts_by_id(pipeline, job.job_id)
    [final] = [a for a in rows.values() if a["artifact_type"].endswith("_final")]
    assert (final["artifact_name"], final["artifact_type"], final["mime_type"]) == (name, artifact_type, content_type)
    body, stored_type = s3_body(s3_client, settings.bucket, final["s3_key"])
    assert stored_type == content_type
    assert body.decode() == execution_steps(pipeline, s3_client, settings, job.job_id)[2]["output"].strip()


def test_image_only_deliverable_falls_back_to_the_last_text_and_images_follow_the_final(pipeline, settings, s3_client):
    job = pipeline.submit(mixed_workflow())
    assert pipeline.run(job.job_id).success
    steps = execution_steps(pipeline, s3_client, settings, job.job_id)
    body, _ = s3_body(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/final.md")
    assert body.decode() == steps[1]["output"]  # Research: the deliverable (Social Images) is image-only

    rows = artifacts_by_id(pipeline, job.job_id)
    ordered = [rows[i] for i in pipeline.job(job.job_id)["artifacts"]]
    assert sorted(ordered, key=lambda a: a["artifact_id"]) == sorted(rows.values(), key=lambda a: a["artifact_id"])
    assert [a["artifact_type"] for a in ordered] == ["step_output", "markdown_final"] + ["image"] * 5 + ["step_output"] * 2
    assert ordered[0]["artifact_name"] == "step_3_social_images.json"  # the report: the max step_order step's


def test_a_rerun_rewrites_the_same_final(pipeline, settings, s3_client):
    job = pipeline.submit(two_text_steps())
    assert pipeline.run(job.job_id).success
    first = pipeline.job(job.job_id)
    assert pipeline.run(job.job_id).success
    again = pipeline.job(job.job_id)
    assert (again["output_url"], again["artifacts"]) == (first["output_url"], first["artifacts"])
    assert [s["step_type"] for s in execution_steps(pipeline, s3_client, settings, job.job_id)].count("final_output") == 1


def test_a_failed_job_gets_no_deliverable(pipeline, settings, s3_client):
    job = pipeline.submit(two_text_steps("Write the report. [[resp-fault:status_failed]]"))
    assert not pipeline.run(job.job_id).success
    row = pipeline.job(job.job_id)
    assert row["status"] == "failed" and row["error_message"].startswith("Step 2 (Write Report) failed")
    assert "output_url" not in row
    # The seed's document route serves from `job.artifacts` whatever the status: nothing left there to serve.
    assert row["artifacts"] == []
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=settings.bucket).get("Contents", [])]
    assert not [k for k in keys if "/final." in k]
    assert not [a for a in pipeline.artifacts(job.job_id) if a["artifact_type"].endswith("_final")]
    steps = execution_steps(pipeline, s3_client, settings, job.job_id)
    assert "final_output" not in [s["step_type"] for s in steps]


def test_deliverable_steps_follow_the_seed_rule():
    def steps(*specs):
        return [WorkflowStep(step_name=f"s{i}", **spec) for i, spec in enumerate(specs)]

    assert deliverable_indices(steps({"step_order": 0}, {"step_order": 2}, {"step_order": 1})) == [1]
    assert deliverable_indices(steps({"step_order": 1}, {"step_order": 1}, {"step_order": 0})) == [0, 1]
    assert deliverable_indices(steps({}, {"is_deliverable": "True"}, {})) == [1]
    assert deliverable_indices(steps({}, {}, {})) == [2]


def test_document_type_follows_content_then_the_last_step_name():
    assert document_for('{"a": 1}', "Report").name == "final.json"
    assert document_for("<!DOCTYPE html><html><body>x</body></html>", "Report").name == "final.html"
    fenced = document_for("Here it is:\n```html\n<section>hi</section>\n```\nEnjoy", "Report")
    assert (fenced.name, fenced.body) == ("final.html", b"<section>hi</section>")
    assert document_for("<section>hi</section>", "Landing HTML").artifact_type == "html_final"
    assert document_for("# Title\n\ntext", "Report").artifact_type == "markdown_final"
    assert document_for("[1, 2]", "Report").content_type == "application/json"
