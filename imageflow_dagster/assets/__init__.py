from imageflow_dagster.assets.process_job import process_job

# One op, six assets: planned_prompts, step_reports, generated_images, s3_objects, artifacts, execution_steps.
all_assets = [process_job]
# Not here: assets/openai_spend.py's `openai_spend` (daily partitions, its own job), registered in definitions.py,
# because this list is what a job's run materializes, one job_id partition at a time.
