"""Run tags: what a person filters runs by (`imageflow/…`), and imageflow's own bookkeeping
(`imageflow.internal/…`), kept in a namespace of its own so the Runs list leads with Dagster's partition tag."""

JOB_TAG = "imageflow/job_id"
TENANT_TAG = "imageflow/tenant_id"
WORKFLOW_TAG = "imageflow/workflow_id"
WORKFLOW_NAME_TAG = "imageflow/workflow_name"
CLAIM_TAG = "imageflow.internal/claim_id"
_MAX_TAG_VALUE = 255  # Dagster refuses longer tag values


def job_tags(job_id: str, tenant_id: str, workflow_id: str, workflow_name: str | None = None) -> dict[str, str]:
    tags = {JOB_TAG: job_id, TENANT_TAG: tenant_id, WORKFLOW_TAG: workflow_id}
    if workflow_name:
        tags[WORKFLOW_NAME_TAG] = workflow_name
    return {key: str(value)[:_MAX_TAG_VALUE] for key, value in tags.items()}
