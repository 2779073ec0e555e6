import dagster as dg

# One partition per job; the key is the job's `job_id`.
jobs_partitions = dg.DynamicPartitionsDefinition(name="jobs")
