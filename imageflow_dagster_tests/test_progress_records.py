"""Progress while a job runs: `execution_steps.json` holds the finished text step while the images are still being
rendered, and the job row names the file, as the seed's job page needs to show progress."""

import json

from botocore.exceptions import ClientError

from imageflow_dagster_tests.conftest import run_while_watching
from imageflow_dagster_tests.workflows import image_step, text_step

WORKFLOW = {
    "workflow_name": "Slow images",
    "steps": [
        text_step("Research", "Research the company.", 0),
        image_step("Brand Images", "Create 1 brand image.", 1, depends_on=[0], model="gpt-image-2.6-sunburst", quality="low"),
    ],
}
DEADLINE_S = 60


def read_steps(s3_client, bucket: str, key: str) -> list[dict] | None:
    try:
        return json.loads(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError:
        return None


def test_the_finished_text_step_is_in_execution_steps_while_images_render(pipeline, settings, s3_client, openai_server):
    openai_server.configure(image_latency_s=4.0)  # keeps the run busy rendering after the text step is done
    job = pipeline.submit(WORKFLOW)
    key = f"{job.tenant_id}/jobs/{job.job_id}/execution_steps.json"

    def text_step_recorded():
        # The file is put before the row names it, so both are read until both show the step.
        steps, row = read_steps(s3_client, settings.bucket, key), pipeline.job(job.job_id)
        if steps and any(s["step_order"] == 1 for s in steps) and row.get("execution_steps_s3_key"):
            return steps, row
        return None

    watched, result = run_while_watching(pipeline, job.job_id, text_step_recorded, DEADLINE_S)
    seen, row = watched or (None, None)

    assert seen is not None, "execution_steps.json never showed the text step while the job ran"
    assert [s["step_type"] for s in seen] == ["form_submission", "ai_generation"]  # no image step, no final yet
    research = seen[1]
    assert research["step_name"] == "Research" and research["success"] is True and research["output"].startswith("# ")
    assert row["status"] == "processing" and row["execution_steps_s3_key"] == key

    assert result.success
    final = read_steps(s3_client, settings.bucket, key)
    assert [s["step_type"] for s in final] == ["form_submission", "ai_generation", "ai_generation", "final_output"]
    assert final[1]["output"] == research["output"] and len(final[2]["image_urls"]) == 1
