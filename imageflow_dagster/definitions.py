"""The code location. The one place a Dagster process reads its settings: the daemon's code server and every run
worker load this module, and `Settings.from_env()` here is what their sensors, assets and ops are given."""

import dagster as dg

from imageflow_dagster.alerts.sensor import alert_sensor
from imageflow_dagster.assets import all_assets
from imageflow_dagster.assets.openai_spend import openai_spend, openai_spend_job, openai_spend_schedule
from imageflow_dagster.jobs import image_generation_job
from imageflow_dagster.resources import deployed_resources
from imageflow_dagster.retention import partition_retention_job, retention_schedule
from imageflow_dagster.sensors import jobs_sensors
from imageflow_dagster.settings import Settings, default_dagster_variables


def build_definitions(settings: Settings) -> dg.Definitions:
    """Sensor intervals and the retention schedule from `settings`; every other setting reaches sensors, assets
    and ops as a resource (resources/__init__.py), locked against run config."""
    return dg.Definitions(
        assets=[*all_assets, openai_spend],
        jobs=[image_generation_job, partition_retention_job, openai_spend_job],
        sensors=[*jobs_sensors(settings), alert_sensor(settings)],
        schedules=[retention_schedule(settings), openai_spend_schedule],
        resources=deployed_resources(settings),
    )


default_dagster_variables()  # Dagster's own run-status sensor limits, for this process (settings.py says why)
defs = build_definitions(Settings.from_env())
