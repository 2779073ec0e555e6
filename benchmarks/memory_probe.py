"""One job of N noise images (~3 MB PNG each) materialized in this process; prints its peak RSS in MB.

Run by `benchmarks.memory` in a fresh process per sample, with AWS and OpenAI on other processes, so the figure
is imageflow's own footprint."""

import argparse
import resource

import dagster as dg

from imageflow_dagster.assets import all_assets
from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.resources import build_resources
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job

PER_STEP = 12


def workflow(images: int) -> dict:
    steps, left, order = [], images, 0
    while left > 0:
        count = min(PER_STEP, left)
        steps.append(
            {
                "step_name": f"Images {order + 1}",
                "model": "gpt-5.2",
                "instructions": f"Create {count} brand images. [[images:{count}]]",
                "step_order": order,
                "depends_on": [],
                "tools": [{"type": "image_generation", "model": "gpt-image-2.6-sunburst", "size": "1024x1024", "format": "png"}],
            }
        )
        left, order = left - count, order + 1
    return {"workflow_name": f"memory-{images}", "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, required=True)
    args = parser.parse_args()
    resources = build_resources(Settings.from_env())
    job = submit_job(resources["dynamodb"], workflow=workflow(args.images), answers={"name": "Ada"})
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(jobs_partitions.name, [job.job_id])
        result = dg.materialize(all_assets, partition_key=job.job_id, resources=resources, instance=instance)
        [stored] = [
            e.materialization.metadata["bytes"].value
            for e in result.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey("s3_objects")
        ]
    assert result.success
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{peak_mb:.1f} {stored}")


if __name__ == "__main__":
    main()
