"""Fault injection: each case drives the local OpenAI server's faults or moto and asserts the end state."""

import hashlib
import json
import os
from pathlib import Path

import dagster as dg
import pytest

from imageflow_dagster_tests.conftest import Pipeline, read_json_object, with_changes
from imageflow_dagster_tests.test_pipeline import _image_keys
from imageflow_dagster_tests.workflows import mixed_workflow, single_image_workflow

pytestmark = pytest.mark.faults


def _steps(s3_client, settings, job) -> list[dict]:
    return read_json_object(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/execution_steps.json")


def test_429_storm_with_retry_after_completes(pipeline, openai_server, s3_client, settings):
    markers = " ".join(f"[[image{k}:img-fault:429x2]]" for k in (1, 2, 3))
    job = pipeline.submit(single_image_workflow(f"Create 3 brand images. {markers}"))
    assert pipeline.run(job.job_id).success
    assert pipeline.job(job.job_id)["status"] == "completed"
    attempts = [r for r in openai_server.requests("images")]
    assert len(attempts) == 9  # 3 images x (2 rate-limited + 1 success)
    # One place retries: the SDK's own retry counter stays 0 on every attempt.
    assert [r["retry_count"] for r in attempts] == [0] * 9
    assert openai_server.stats()["faults"].get("429") == 6
    images = _steps(s3_client, settings, job)[1]["images"]
    assert [i["rate_limited"] for i in images] == [2, 2, 2]


def test_500_on_some_prompts_then_success_completes(pipeline, openai_server):
    job = pipeline.submit(single_image_workflow("Create 3 brand images. [[image2:img-fault:500x1]]"))
    assert pipeline.run(job.job_id).success
    assert pipeline.job(job.job_id)["status"] == "completed"
    assert len(openai_server.requests("images")) == 4


def test_timeout_then_success_completes_and_counts_the_attempt(pipeline, resources, openai_server, s3_client, settings):
    resources["openai"] = with_changes(resources["openai"], timeout_s=0.5)
    openai_server.configure(timeout_fault_s=2.0)
    job = pipeline.submit(single_image_workflow("Create 1 brand image. [[image1:img-fault:timeoutx1]]"))
    assert pipeline.run(job.job_id).success
    # The timed-out attempt may have been billed by a real API: it is visible as a second attempt.
    assert len(openai_server.requests("images")) == 2
    assert len(_image_keys(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/")) == 1


def test_timeout_outliving_retries_fails_the_job(pipeline, resources, openai_server):
    resources["openai"] = with_changes(resources["openai"], timeout_s=0.3, max_retries=1)
    openai_server.configure(timeout_fault_s=1.5)
    job = pipeline.submit(single_image_workflow("Create 1 brand image. [[image1:img-fault:timeout]]"))
    assert not pipeline.run(job.job_id).success
    row = pipeline.job(job.job_id)
    assert row["status"] == "failed"
    assert row["error_message"].startswith("Step 1 (Brand Images) failed: image 1 (Brand Images 1): OpenAI error")
    assert row["error_type"] == "APITimeoutError"


@pytest.mark.parametrize("marker", ["[[plan:garbage]]", "[[plan:empty]]"])
def test_unusable_plan_falls_back_to_one_prompt(pipeline, s3_client, settings, marker):
    job = pipeline.submit(single_image_workflow(f"Draw the company logo. {marker}"))
    assert pipeline.run(job.job_id).success
    step = _steps(s3_client, settings, job)[1]
    assert step["input"]["planner_fallback"] is True and len(step["image_urls"]) == 1
    assert "Draw the company logo." in step["images"][0]["prompt"]


def test_planner_error_outliving_retries_fails_the_step(pipeline, s3_client, settings):
    job = pipeline.submit(single_image_workflow("Create 2 images. [[resp-fault:500]]"))
    assert not pipeline.run(job.job_id).success
    row = pipeline.job(job.job_id)
    assert row["error_message"].startswith("Step 1 (Brand Images) failed: OpenAI error 500")
    steps = _steps(s3_client, settings, job)
    assert steps[1]["success"] is False and steps[1]["image_urls"] == []


def test_s3_access_denied_fails_job_naming_s3_and_prefix(pipeline, s3_client, settings):
    """The Deny hits the run's LAST S3 write (execution_steps.json), so every earlier write really happens."""
    job = pipeline.submit(mixed_workflow())
    prefix = f"{job.tenant_id}/jobs/{job.job_id}/"
    denied = f"{prefix}execution_steps.json"
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{settings.bucket}/{denied}",
            }
        ],
    }
    s3_client.put_bucket_policy(Bucket=settings.bucket, Policy=json.dumps(deny))
    assert not pipeline.run(job.job_id).success
    s3_client.delete_bucket_policy(Bucket=settings.bucket)

    row = pipeline.job(job.job_id)
    assert row["status"] == "failed" and row["error_type"] == "StorageError"
    expected = f"Storage error: S3 PutObject failed with AccessDenied for s3://{settings.bucket}/{prefix}"
    assert row["error_message"] == expected
    # The error guard wrote the failure, not the normal finish: the row names no record and no artifacts.
    assert "execution_steps_s3_key" not in row and row["artifacts"] == []  # (a failed job lists none)

    # Everything written before the denied put is there: at the job's top level the 5 images, the 3 step
    # outputs and the final document, and no execution_steps.json; 3 private replay answers under .imageflow/responses/; nothing else
    # but previews of those images under thumbnails/ (when the run makes them).
    listed = s3_client.list_objects_v2(Bucket=settings.bucket, Prefix=prefix).get("Contents", [])
    keys = {o["Key"] for o in listed}
    top = {k for k in keys if "/" not in k.removeprefix(prefix)}
    images = sorted(k for k in top if k.endswith((".png", ".webp")))
    assert [k.rsplit(".", 1)[-1] for k in images] == ["png"] * 3 + ["webp"] * 2
    names = ("step_1_research.md", "step_2_brand_images.json", "step_3_social_images.json", "final.md")
    assert top == {*images, *(prefix + name for name in names)}
    assert denied not in keys
    private = {k for k in keys if k.startswith(f"{prefix}.imageflow/responses/")}
    assert len(private) == 3
    previews = {f"{prefix}thumbnails/{k.removeprefix(prefix).rsplit('.', 1)[0]}.jpg" for k in images}
    assert keys - top - private <= previews
    # Artifact rows (written before execution_steps.json): one per top-level object, none for anything else,
    # none for an object that is not there.
    rows = pipeline.artifacts(job.job_id)
    assert sorted(r["s3_key"] for r in rows) == sorted(top)
    assert sorted(r["artifact_type"] for r in rows) == ["image"] * 5 + ["markdown_final"] + ["step_output"] * 3


def test_missing_bucket_is_named(pipeline, s3_client, settings):
    job = pipeline.submit(single_image_workflow("Create 1 image."))
    s3_client.delete_bucket(Bucket=settings.bucket)
    assert not pipeline.run(job.job_id).success
    row = pipeline.job(job.job_id)
    assert row["status"] == "failed"
    assert f"S3 bucket {settings.bucket!r} does not exist (ARTIFACTS_BUCKET)" in row["error_message"]


def test_missing_table_is_named_in_the_run_failure(pipeline, db):
    job = pipeline.submit(single_image_workflow("Create 1 image."))
    db.get_client().delete_table(TableName=db.workflows_table)
    result = pipeline.run(job.job_id)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert f"DynamoDB table {db.workflows_table!r} does not exist" in str(failure.event_specific_data.error)
    assert pipeline.job(job.job_id)["error_message"].endswith(f"DynamoDB table {db.workflows_table!r} does not exist (GetItem)")


def test_unconfigured_openai_fails_with_clear_message(pipeline, resources):
    resources["openai"] = with_changes(resources["openai"], base_url=None)
    job = pipeline.submit(single_image_workflow("Create 1 image."))
    assert not pipeline.run(job.job_id).success
    row = pipeline.job(job.job_id)
    assert row["error_type"] == "OpenAINotConfigured"
    assert row["error_message"].startswith("OpenAI is not configured: set OPENAI_API_KEY")


CANARY = "sk-imageflow-canary-7f3a9c1e5b"


def test_api_key_appears_nowhere(tmp_path, resources, db, s3_client, settings, openai_server, monkeypatch, capfd):
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)  # read by the resource when it builds its client
    storage = tmp_path / "dagster_home"
    storage.mkdir()
    with dg.instance_for_test(temp_dir=str(storage)) as instance:
        pipeline = Pipeline(instance, resources, db)
        job = pipeline.submit(mixed_workflow(brand_extra=" [[image2:img-fault:500]]"))  # a failing run logs more
        pipeline.run(job.job_id)
    # The canary is the key that was sent: every request carried `Bearer <canary>` (the server keeps its hash).
    sent = openai_server.requests()
    assert {r["endpoint"] for r in sent} == {"images", "responses"}
    assert {r["authorization_sha256"] for r in sent} == {hashlib.sha256(f"Bearer {CANARY}".encode()).hexdigest()}
    assert not _files_containing(storage, CANARY)
    for obj in s3_client.list_objects_v2(Bucket=settings.bucket).get("Contents", []):
        assert CANARY.encode() not in s3_client.get_object(Bucket=settings.bucket, Key=obj["Key"])["Body"].read()
    for table in db.table_names():
        assert CANARY not in json.dumps(db.get_client().scan(TableName=table)["Items"])
    captured = capfd.readouterr()
    assert CANARY not in captured.out and CANARY not in captured.err


def _files_containing(root: Path, needle: str) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            hits.append(os.fspath(path))
    return hits
