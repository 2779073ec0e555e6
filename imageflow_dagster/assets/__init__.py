from imageflow_dagster.assets.images import generated_images
from imageflow_dagster.assets.planning import plan_steps
from imageflow_dagster.assets.recording import record_job

# Three ops: planning, image generation (pool `openai_images`), and the record (S3 objects, artifacts,
# execution steps and the job status).
all_assets = [plan_steps, generated_images, record_job]
