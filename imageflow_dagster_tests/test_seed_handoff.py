"""Replacing the seed's worker (deploy/seed-handoff/): the seed API's local-mode worker script hands a job over
without running anything of the seed; a handed-over single-step rerun reaches the run as `rerun_steps` and asks the
model again for that step only ("Rerun Step Only") or with its dependents ("& Continue"); the state machine writes
what the script writes; during a migration (`IMAGEFLOW_REQUIRE_HANDOFF`) the sensor claims handed-over jobs only."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from imageflow_dagster.definitions import defs
from imageflow_dagster.flow.job_store import CLAIM_ID
from imageflow_dagster_tests.settings_now import settings_now
from imageflow_dagster_tests.workflows import text_step

HANDOFF = Path(__file__).resolve().parent.parent / "deploy" / "seed-handoff"
CHAIN = {  # 1 Research -> 2 Outline -> 3 Article: each step depends on the one before
    "workflow_name": "Chain",
    "steps": [
        text_step("Research", "Research the company.", 0, []),
        text_step("Outline", "Outline an article.", 1, [0]),
        text_step("Article", "Write the article.", 2, [1]),
    ],
}


@pytest.fixture
def sensor_instance():
    with dg.instance_for_test() as instance:
        yield instance


def tick(instance, db) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), definitions=defs,
                                      resources={"dynamodb": db, "settings": settings_now()})
    return defs.resolve_sensor_def("processing_jobs_sensor").evaluate_tick(context)


def hand_over(settings, job_id: str, **env) -> subprocess.CompletedProcess:
    """The seed API's local mode: `python3 $WORKER_SCRIPT_PATH` with JOB_ID (and STEP_INDEX, CONTINUE_AFTER)."""
    environment = {**os.environ, "JOB_ID": job_id, "JOBS_TABLE": settings.tables.jobs, **env}
    return subprocess.run([sys.executable, str(HANDOFF / "handoff_worker.py")], env=environment,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("continue_after", "asked_again"), [("false", ["Outline"]), ("true", ["Article", "Outline"])])
def test_a_handed_over_step_rerun_asks_again_for_that_step(pipeline, db, settings, openai_server, sensor_instance,
                                                            continue_after, asked_again):
    job = pipeline.submit(CHAIN)
    assert pipeline.run(job.job_id).success
    assert len(openai_server.requests("responses")) == 3
    openai_server.reset()

    # The seed's UI asks to rerun step 2 (index 1); its API runs the worker script, which exits at once.
    done = hand_over(settings, job.job_id, STEP_INDEX="1", CONTINUE_AFTER=continue_after)
    assert done.returncode == 0, done.stderr
    row = pipeline.job(job.job_id)
    assert (row["status"], row["imageflow_rerun_step_index"]) == ("processing", 1)
    assert row["imageflow_handoff"].startswith("handoff-")  # this hand-off's own mark

    [request] = tick(sensor_instance, db).run_requests
    config = {"rerun_steps": [2], "rerun_dependents": continue_after == "true"}
    assert request.run_config == {"ops": {"process_job": {"config": config}}}
    again = pipeline.run(job.job_id, run_config=request.run_config, tags=request.tags)
    row = pipeline.job(job.job_id)
    assert again.success and row["status"] == "completed"
    assert "imageflow_rerun_step_index" not in row  # done: a later entry into `processing` is a whole-job run
    assert "imageflow_handoff" not in row and "imageflow_claimed_handoff" not in row  # consumed by this run
    assert sorted(_step_asked(call["input"]) for call in openai_server.requests("responses")) == asked_again


def _step_asked(step_input: str) -> str:
    """Which step of CHAIN a call was for: each step's input holds the block of the one step it depends on."""
    if "=== Step 2: Outline ===" in step_input:
        return "Article"
    return "Outline" if "=== Step 1: Research ===" in step_input else "Research"


def test_a_handed_over_job_runs_whole_and_clears_an_earlier_step_rerun(pipeline, db, settings, sensor_instance):
    job = pipeline.submit(CHAIN)
    db.update_item(db.jobs_table, {"job_id": job.job_id},
                   set_values={"imageflow_rerun_step_index": 2, "imageflow_rerun_continue": True})
    done = hand_over(settings, job.job_id)
    assert done.returncode == 0, done.stderr
    row = pipeline.job(job.job_id)
    assert row["imageflow_handoff"].startswith("handoff-")
    assert "imageflow_rerun_step_index" not in row and "imageflow_rerun_continue" not in row
    [request] = tick(sensor_instance, db).run_requests
    assert request.run_config == {}


def test_the_worker_script_needs_a_job(settings):
    done = hand_over(settings, "")
    assert done.returncode == 2 and done.stderr.strip() == "imageflow hand-off: JOB_ID is not set"


def test_during_a_migration_only_handed_over_jobs_are_claimed(pipeline, db, settings, sensor_instance, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_REQUIRE_HANDOFF", "true")
    seeds_own = pipeline.submit(CHAIN)  # `processing`, but the seed's own worker was started for it
    ours = pipeline.submit(CHAIN)
    assert hand_over(settings, ours.job_id).returncode == 0
    assert [r.partition_key for r in tick(sensor_instance, db).run_requests] == [ours.job_id]
    assert CLAIM_ID not in pipeline.job(seeds_own.job_id)

    monkeypatch.setenv("IMAGEFLOW_REQUIRE_HANDOFF", "false")  # migration over: every processing job is ours
    assert [r.partition_key for r in tick(sensor_instance, db).run_requests] == [seeds_own.job_id]


def test_the_state_machine_writes_what_the_script_writes():
    """Production (Step Functions) and local mode hand over the same way: same update expressions and values, and
    a mark of the hand-off's own (the execution's id; a uuid from the script)."""
    sys.path.insert(0, str(HANDOFF))
    try:
        from handoff_worker import handoff_update
    finally:
        sys.path.remove(str(HANDOFF))
    machine = json.loads((HANDOFF / "state-machine.asl.json").read_text())
    states = machine["States"]
    cases = {"ProcessWholeJob": (None, None), "RerunOneStep": ("1", "false"), "RerunStepAndContinue": ("1", "true")}
    for state, (step_index, continue_after) in cases.items():
        parameters = states[state]["Parameters"]
        expression, values = handoff_update(step_index, continue_after)
        assert parameters["UpdateExpression"] == expression, state
        assert parameters["ConditionExpression"] == "attribute_exists(job_id)"
        assert sorted(parameters["ExpressionAttributeValues"]) == sorted(values), state
        if continue_after is not None:
            assert parameters["ExpressionAttributeValues"][":continue"] == values[":continue"], state
        assert parameters["ExpressionAttributeValues"][":mark"] == {"S.$": "$$.Execution.Id"}, state
    assert handoff_update(None, None)[1][":mark"] != handoff_update(None, None)[1][":mark"]
    choices = {c["StringEquals"]: c["Next"] for c in states["WhichAction"]["Choices"]}
    assert choices == {"process_single_step": "RerunOneStep", "process_single_step_and_continue": "RerunStepAndContinue"}
