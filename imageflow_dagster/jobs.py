import dagster as dg

from imageflow_dagster.assets.common import GROUP

# In-process: the job is one op (`process_job`); parallelism lives inside it (threads) and across runs
# (one run per job).
image_generation_job = dg.define_asset_job(
    "image_generation_job",
    selection=dg.AssetSelection.groups(GROUP),
    executor_def=dg.in_process_executor,
    description="Processes one job (partition = job_id) from planning to its final status.",
)
