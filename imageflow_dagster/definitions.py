import dagster as dg

from imageflow_dagster.alerts.sensor import job_failure_alert_sensor
from imageflow_dagster.assets import all_assets
from imageflow_dagster.assets.spend import openai_spend, openai_spend_job, openai_spend_schedule
from imageflow_dagster.jobs import image_generation_job
from imageflow_dagster.resources import deployed_resources
from imageflow_dagster.retention import partition_retention_job, partition_retention_schedule
from imageflow_dagster.sensors import job_run_canceled_sensor, job_run_failure_sensor, processing_jobs_sensor
from imageflow_dagster.settings import Settings

defs = dg.Definitions(
    assets=[*all_assets, openai_spend],
    jobs=[image_generation_job, partition_retention_job, openai_spend_job],
    sensors=[processing_jobs_sensor, job_run_failure_sensor, job_run_canceled_sensor, job_failure_alert_sensor],
    schedules=[partition_retention_schedule, openai_spend_schedule],
    resources=deployed_resources(Settings.from_env()),
)
