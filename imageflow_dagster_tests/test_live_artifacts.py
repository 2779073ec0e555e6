"""Progress while a job runs, as the seed's job page polls it: each image's artifact row as soon as its bytes are in
S3, and `live_step` in the seed's statuses, `final` while the run records the job and `error` when a step fails."""

import importlib
import logging
import threading

import pytest

from imageflow_dagster.flow.progress import LiveProgress
from imageflow_dagster_tests.conftest import run_while_watching
from imageflow_dagster_tests.test_pipeline import _image_keys
from imageflow_dagster_tests.workflows import single_image_workflow, text_step

DEADLINE_S = 60
POLL_S = 0.05  # polling interval, not synchronisation: every loop ends on what the tables and S3 hold
# The module, not the `process_job` asset that imageflow_dagster.assets exports under the same name.
process_job_module = importlib.import_module("imageflow_dagster.assets.process_job")


def _image_rows(pipeline, job_id: str) -> list[dict]:
    return [r for r in pipeline.artifacts(job_id) if r["artifact_type"] == "image"]


def test_an_image_row_is_written_as_its_bytes_land_and_only_once(pipeline, openai_server, s3_client, settings):
    openai_server.configure(timeout_fault_s=5.0)  # image 2's one attempt is answered this late: image 1 lands first
    job = pipeline.submit(single_image_workflow("Create 2 brand images. [[image2:img-fault:timeoutx1]]"))
    prefix = f"{job.tenant_id}/jobs/{job.job_id}/"

    def image_row_before_the_other_image():
        rows = _image_rows(pipeline, job.job_id)
        stored = _image_keys(s3_client, settings.bucket, prefix)  # read after the rows: no later than them
        if rows and len(stored) == 1:  # a row while the other image is not even in S3 yet
            return rows, pipeline.job(job.job_id)["status"]
        return None

    seen, result = run_while_watching(pipeline, job.job_id, image_row_before_the_other_image, DEADLINE_S, POLL_S)
    early, status = seen or (None, None)

    assert early is not None, "no image row appeared while the slow image was still being rendered"
    assert status == "processing" and len(early) == 1
    assert result.success
    stored = _image_keys(s3_client, settings.bucket, prefix)
    final = _image_rows(pipeline, job.job_id)
    assert len(stored) == 2 and sorted(r["s3_key"] for r in final) == stored  # one row per image, none twice
    assert len({r["artifact_id"] for r in pipeline.artifacts(job.job_id)}) == len(pipeline.artifacts(job.job_id))
    # The final recording rewrote the same row: same id, same content, the first created_at kept.
    assert next(r for r in final if r["s3_key"] == early[0]["s3_key"]) == early[0]
    assert early[0]["mime_type"] == "image/png" and early[0]["file_size_bytes"] > 0


def _watch_live_step(pipeline, job_id: str, stop: threading.Event, seen: list, wanted: str, found: threading.Event):
    """The job row as the seed's page reads it; `found` is set once `live_step` shows status `wanted`."""
    while not stop.wait(0.02):
        live = (pipeline.job(job_id) or {}).get("live_step")
        if live and (not seen or seen[-1] != live):
            seen.append(live)
            if live["status"] == wanted:
                found.set()


def _run_watching(pipeline, monkeypatch, job_id: str, wanted: str):
    """Runs the job while watching its live_step. Recording (store_objects, after `final` or `error` is written
    and before the status write removes live_step) waits until the watcher saw `wanted`, or the deadline passed,
    so the state is observed on the row without depending on how long it stays there."""
    stop, found, seen = threading.Event(), threading.Event(), []
    store_objects = process_job_module.store_objects

    def gated(*args, **kwargs):
        found.wait(DEADLINE_S)
        return store_objects(*args, **kwargs)

    monkeypatch.setattr(process_job_module, "store_objects", gated)
    watcher = threading.Thread(target=_watch_live_step, args=(pipeline, job_id, stop, seen, wanted, found))
    watcher.start()
    try:
        result = pipeline.run(job_id)
    finally:
        stop.set()
        watcher.join()
    return result, seen


def test_live_step_shows_final_while_the_run_records_the_job(pipeline, monkeypatch):
    job = pipeline.submit(single_image_workflow("Create 2 brand images."))
    result, seen = _run_watching(pipeline, monkeypatch, job.job_id, "final")
    assert result.success
    finals = [live for live in seen if live["status"] == "final"]
    assert finals, f"live_step never showed `final`; statuses seen: {[live['status'] for live in seen]}"
    assert finals[-1]["step_order"] == 1 and finals[-1]["output_text"].endswith("\nRecording results...")
    assert "error" not in finals[-1] and finals[-1]["truncated"] is False
    assert {live["status"] for live in seen} <= {"planning", "generating", "final"}
    assert "live_step" not in pipeline.job(job.job_id)


FAILING = {
    "text step": {"workflow_name": "Failing text", "steps": [text_step("Research", "Research. [[resp-fault:500]]", 0)]},
    "image step": single_image_workflow("Create 1 brand image. [[image1:img-fault:not_image]]"),
}


@pytest.mark.parametrize("case", list(FAILING))
def test_live_step_shows_error_with_the_failure_when_a_step_fails(pipeline, monkeypatch, case):
    job = pipeline.submit(FAILING[case])
    result, seen = _run_watching(pipeline, monkeypatch, job.job_id, "error")
    assert not result.success
    errors = [live for live in seen if live["status"] == "error"]
    assert errors, f"live_step never showed `error`; statuses seen: {[live['status'] for live in seen]}"
    live, row = errors[-1], pipeline.job(job.job_id)
    assert live["step_order"] == 1 and live["error"] and live["error"] in row["error_message"]
    assert live["output_text"].endswith(f"Failed: {live['error']}")
    assert "final" not in {s["status"] for s in seen}  # a failing job keeps showing its error
    assert row["status"] == "failed" and "live_step" not in row


def test_live_progress_writes_error_then_no_final(pipeline, db):
    job = pipeline.submit(single_image_workflow("Create 1 brand image."))
    progress = LiveProgress(db, job.job_id, logging.getLogger("test"))
    progress.say(2, "Running Report...", "streaming")
    progress.failed(2, "OpenAI error 500: boom")
    live = pipeline.job(job.job_id)["live_step"]
    assert {k: live[k] for k in ("step_order", "status", "error", "truncated")} == {
        "step_order": 2, "status": "error", "error": "OpenAI error 500: boom", "truncated": False
    }
    assert live["output_text"] == "Running Report...\nFailed: OpenAI error 500: boom" and live["updated_at"]
    progress.recording(2)
    assert pipeline.job(job.job_id)["live_step"] == live
