from imageflow_dagster.assets.artifacts import artifacts
from imageflow_dagster.assets.execution_steps import execution_steps
from imageflow_dagster.assets.images import generated_images
from imageflow_dagster.assets.planning import plan_steps
from imageflow_dagster.assets.storage import s3_objects

all_assets = [plan_steps, generated_images, s3_objects, artifacts, execution_steps]
