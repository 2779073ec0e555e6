"""The code location loads: five assets in lineage order, the job, sensors and schedule; `dagster definitions
validate -w workspace.yaml` passes."""

import subprocess
import sys
from pathlib import Path

import dagster as dg

from imageflow_dagster.definitions import defs

ROOT = Path(__file__).resolve().parent.parent


def test_assets_form_the_lineage_chain():
    graph = defs.resolve_asset_graph()
    parents = lambda key: {p.to_user_string() for p in graph.get(dg.AssetKey(key)).parent_keys}  # noqa: E731
    assert parents("generated_images") == {"planned_prompts"}
    assert {"planned_prompts", "step_reports", "generated_images"} == parents("s3_objects")
    assert parents("artifacts") == {"s3_objects"}
    assert "artifacts" in parents("execution_steps")
    assert all(graph.get(dg.AssetKey(k)).partitions_def.name == "jobs" for k in ("planned_prompts", "execution_steps"))
    assert defs.resolve_job_def("image_generation_job")
    assert {s.name for s in defs.sensors} == {"processing_jobs_sensor", "job_run_failure_sensor", "job_run_canceled_sensor"}


def test_generated_images_belongs_to_the_images_pool():
    assert defs.resolve_assets_def("generated_images").op.pool == "openai_images"


def test_dagster_definitions_validate_passes():
    dagster = Path(sys.executable).parent / "dagster"
    result = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All code locations passed validation" in result.stderr + result.stdout
