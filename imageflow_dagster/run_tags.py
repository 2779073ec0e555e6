"""Run tags: what a person filters runs by (`imageflow/…`), and imageflow's own bookkeeping
(`imageflow.internal/…`), kept in a namespace of its own so the Runs list leads with Dagster's partition tag."""

JOB_TAG = "imageflow/job_id"
TENANT_TAG = "imageflow/tenant_id"
WORKFLOW_TAG = "imageflow/workflow_id"
WORKFLOW_NAME_TAG = "imageflow/workflow_name"
CLAIM_TAG = "imageflow.internal/claim_id"
_MAX_TAG_VALUE = 255  # Dagster refuses longer tag values

# Dagster's queued run coordinator starts the highest `dagster/priority` first, oldest first among equals; a run
# without the tag is 0. The sensor's runs wait at -1, so a run launched by hand (an asset's Materialize, the
# Launchpad) starts before the sensor's backlog. Once a run starts its priority no longer orders anything, and it
# is set to 0 (job_tags, which a run adds when it starts): Re-execute copies the parent run's tags, and an
# operator's rerun of one of the sensor's runs must not queue at -1 behind the backlog either.
PRIORITY_TAG = "dagster/priority"
SENSOR_PRIORITY = "-1"
STARTED_PRIORITY = "0"


def tag_value(value) -> str:
    return str(value)[:_MAX_TAG_VALUE]


def job_tags(job_id: str, tenant_id: str, workflow_id: str, workflow_name: str | None = None) -> dict[str, str]:
    """The tags of a run of the job once it has started, whoever launched it."""
    tags = {JOB_TAG: job_id, TENANT_TAG: tenant_id, WORKFLOW_TAG: workflow_id, PRIORITY_TAG: STARTED_PRIORITY}
    if workflow_name:
        tags[WORKFLOW_NAME_TAG] = workflow_name
    return {key: tag_value(value) for key, value in tags.items()}


def sensor_run_tags(job_id: str, tenant_id: str, workflow_id: str, workflow_name: str | None = None) -> dict[str, str]:
    """The tags of a run the sensor requests: the job's, queued behind runs launched by hand."""
    return {**job_tags(job_id, tenant_id, workflow_id, workflow_name), PRIORITY_TAG: SENSOR_PRIORITY}
