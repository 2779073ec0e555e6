from imageflow_dagster.assets.process_job import process_job

# One op, six assets: planned_prompts, step_reports, generated_images, s3_objects, artifacts, execution_steps.
all_assets = [process_job]
