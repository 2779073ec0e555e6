"""The code location loads: six assets in lineage order from one op, the job, sensors and schedule (`dg check
defs` is in test_dg.py)."""

import dataclasses
from pathlib import Path

import dagster as dg
import pytest

from imageflow_dagster.definitions import build_definitions, defs
from imageflow_dagster.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ("planned_prompts", "step_reports", "generated_images", "s3_objects", "artifacts", "execution_steps")


def test_assets_form_the_lineage_chain():
    graph = defs.resolve_asset_graph()
    parents = lambda key: {p.to_user_string() for p in graph.get(dg.AssetKey(key)).parent_keys}  # noqa: E731
    assert parents("generated_images") == {"planned_prompts"}
    assert {"planned_prompts", "step_reports", "generated_images"} == parents("s3_objects")
    assert parents("artifacts") == {"s3_objects"}
    assert "artifacts" in parents("execution_steps")
    assert all(graph.get(dg.AssetKey(k)).partitions_def.name == "jobs" for k in ("planned_prompts", "execution_steps"))
    assert defs.resolve_job_def("image_generation_job")
    assert {s.name for s in defs.sensors} == {
        "processing_jobs_sensor", "job_run_failure_sensor", "job_run_canceled_sensor", "job_failure_alert_sensor"
    }


def test_every_asset_comes_from_one_op_in_the_images_pool_that_cannot_be_subset():
    """Materializing any one asset of a job runs the whole job: no stage runs alone on stale inputs."""
    assets_defs = {defs.resolve_assets_def(key) for key in ASSETS}
    assert len(assets_defs) == 1
    [process_job] = assets_defs
    assert process_job.op.name == "process_job" and process_job.op.pool == "openai_images"
    assert not process_job.can_subset
    assert {key.to_user_string() for key in process_job.keys} == set(ASSETS)


def test_checks_are_evaluated_per_job():
    process_job = defs.resolve_assets_def("execution_steps")
    assert {spec.name: spec.partitions_def.name for spec in process_job.check_specs} == {
        "every_planned_image_stored": "jobs",
        "every_workflow_step_recorded": "jobs",
    }


def test_no_resource_is_settable_from_run_config():
    """The Launchpad's run config may choose how a run replays, never where it sends a key or writes: Dagster's
    config check refuses every resource field, the OpenAI endpoint and key, AWS endpoints, tables and the IO
    manager's directory alike."""
    job = defs.resolve_job_def("image_generation_job")
    per_run = {"ops": {"process_job": {"config": {"replay_answers": False, "rerun_steps": [1]}}}}
    assert dg.validate_run_config(job, per_run)
    attempts = {
        "openai": {"base_url": "http://127.0.0.1:9/v1", "api_key": {"env": "AWS_SECRET_ACCESS_KEY"}},
        "dynamodb": {"endpoint_url": "http://127.0.0.1:9", "jobs_table": "other"},
        "s3": {"bucket": "other-bucket"},
        "io_manager": {"base_dir": "/tmp/elsewhere"},
        "settings": {"webhook_allowed_hosts": ["169.254.169.254"], "max_queued_runs": 1000},
    }
    for key, config in attempts.items():
        with pytest.raises(dg.DagsterInvalidConfigError, match=f"root:resources:{key}:config"):
            dg.validate_run_config(job, {**per_run, "resources": {key: {"config": config}}})


def test_one_settings_object_sets_the_intervals_the_schedule_and_what_the_ui_lists():
    settings = dataclasses.replace(
        Settings(), sensor_interval_s=7, run_status_sensor_interval_s=11, alert_interval_s=13,
        retention_cron="5 4 * * *", max_queued_runs=3, ui_url="https://ops:pw-in-url@dagster.example/",
    )
    built = build_definitions(settings)
    assert {s.name: s.minimum_interval_seconds for s in built.sensors} == {
        "processing_jobs_sensor": 7, "job_run_failure_sensor": 11, "job_run_canceled_sensor": 11,
        "job_failure_alert_sensor": 13,
    }
    assert built.resolve_schedule_def("partition_retention_schedule").cron_schedule == "5 4 * * *"
    shown = built.resolve_job_def("image_generation_job").resource_defs["settings"].description
    assert "- `max_queued_runs`: `3`" in shown and "'https://dagster.example/'" in shown and "pw-in-url" not in shown
