import dagster as dg

from imageflow_dagster.assets import all_assets
from imageflow_dagster.jobs import image_generation_job
from imageflow_dagster.resources import build_resources
from imageflow_dagster.settings import Settings

defs = dg.Definitions(
    assets=all_assets,
    jobs=[image_generation_job],
    resources=build_resources(Settings.from_env()),
)
