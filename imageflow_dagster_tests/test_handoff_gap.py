"""The gap in a step rerun (issue 21): the seed's API sets the job `processing`, then hands it over (the local worker
script, or a Step Functions execution of deploy/seed-handoff/state-machine.asl.json). A sensor tick in between
claims the job before its rerun fields exist; the hand-off's fresh mark makes that run's final write leave the job
`processing` for a run of the hand-off, which asks the model again for the step. With IMAGEFLOW_REQUIRE_HANDOFF the
tick in the gap claims nothing, and a job marked once is not claimable forever."""

import json
import re
import uuid

import boto3
import pytest

from imageflow_dagster.flow.job_store import CLAIM_ID, Finish, claim_job, mark_failed
from imageflow_dagster.flow.seed_handoff import CLAIMED_HANDOFF, HANDOFF_MARK, RERUN_CONTINUE, RERUN_STEP_INDEX
from imageflow_dagster.ids import utc_now_iso
from imageflow_dagster_tests.test_seed_handoff import CHAIN, HANDOFF, _step_asked, hand_over, sensor_instance, tick

__all__ = ["sensor_instance"]  # the fixture, shared with test_seed_handoff.py

RERUN_OUTLINE = {"ops": {"process_job": {"config": {"rerun_steps": [2], "rerun_dependents": False}}}}
ENTRY = (HANDOFF_MARK, CLAIMED_HANDOFF, CLAIM_ID, RERUN_STEP_INDEX, RERUN_CONTINUE)


def hand_over_by_script(settings, job_id: str, step_index: int | None) -> None:
    env = {} if step_index is None else {"STEP_INDEX": str(step_index), "CONTINUE_AFTER": "false"}
    done = hand_over(settings, job_id, **env)
    assert done.returncode == 0, done.stderr


def hand_over_by_state_machine(settings, job_id: str, step_index: int | None) -> None:
    """One execution of the state machine for the input the seed's API starts it with: the chosen Task state's
    DynamoDB UpdateItem, its paths resolved as Step Functions resolves them, sent to moto."""
    machine = json.loads((HANDOFF / "state-machine.asl.json").read_text())
    action = "process_job" if step_index is None else "process_single_step"
    data = {"job_id": job_id, "step_index": step_index or 0, "action": action, "continue_after": False}
    execution = f"arn:aws:states:us-east-1:123456789012:execution:imageflow-handoff:{uuid.uuid4()}"
    context = {"Execution": {"Id": execution}, "State": {"EnteredTime": utc_now_iso()}}
    state = machine["States"][_chosen(machine["States"]["WhichAction"], data)]
    assert state["Resource"] == "arn:aws:states:::dynamodb:updateItem"
    parameters = _resolve(state["Parameters"], data, context)
    parameters["TableName"] = settings.tables.jobs  # the deployment's ${JobsTable}
    boto3.client("dynamodb").update_item(**parameters)


def _chosen(choice_state: dict, data: dict) -> str:
    for choice in choice_state["Choices"]:
        if data[choice["Variable"].removeprefix("$.")] == choice["StringEquals"]:
            return choice["Next"]
    return choice_state["Default"]


def _resolve(value, data: dict, context: dict):
    if isinstance(value, dict):
        return {
            key.removesuffix(".$"): _path(item, data, context) if key.endswith(".$") else _resolve(item, data, context)
            for key, item in value.items()
        }
    return value


def _path(expression: str, data: dict, context: dict):
    """The paths and the one intrinsic function the state machine uses; anything else fails the test."""
    if formatted := re.fullmatch(r"States\.Format\('\{\}', (\$\.\w+)\)", expression):
        return str(_path(formatted[1], data, context))
    root, path = (context, expression[3:]) if expression.startswith("$$.") else (data, expression[2:])
    for part in path.split("."):
        root = root[part]
    return root


HAND_OVER = {"script": hand_over_by_script, "state machine": hand_over_by_state_machine}


def set_processing_as_the_seeds_api_does(db, job_id: str) -> None:
    """jobRerunController.ts: a completed job is set `processing` before the hand-off starts; nothing else."""
    db.update_item(db.jobs_table, {"job_id": job_id}, set_values={"status": "processing", "updated_at": utc_now_iso()})


def complete_once(pipeline, db, settings, sensor_instance, openai_server, hand_off, job_id: str) -> None:
    hand_off(settings, job_id, None)
    [request] = tick(sensor_instance, db).run_requests
    assert pipeline.run(job_id, run_config=request.run_config, tags=request.tags).success
    row = pipeline.job(job_id)
    assert row["status"] == "completed" and not set(ENTRY) & set(row)  # the mark is consumed with the claim
    assert len(openai_server.requests("responses")) == 3
    openai_server.reset()


def rerun_is_asked_again(pipeline, db, sensor_instance, openai_server, job_id: str) -> None:
    """The sensor claims the hand-off the gap's run left pending, and its run asks again for step 2 only."""
    [request] = tick(sensor_instance, db).run_requests
    assert request.run_config == RERUN_OUTLINE
    assert pipeline.run(job_id, run_config=request.run_config, tags=request.tags).success
    row = pipeline.job(job_id)
    assert row["status"] == "completed" and not set(ENTRY) & set(row)
    assert [_step_asked(call["input"]) for call in openai_server.requests("responses")] == ["Outline"]


@pytest.mark.parametrize("require_handoff", [False, True], ids=["any job", "handed-over only"])
@pytest.mark.parametrize("via", list(HAND_OVER))
def test_a_step_rerun_handed_over_after_the_api_set_processing_is_asked_again(
    pipeline, db, settings, openai_server, sensor_instance, monkeypatch, via, require_handoff
):
    monkeypatch.setenv("IMAGEFLOW_REQUIRE_HANDOFF", str(require_handoff).lower())
    hand_off = HAND_OVER[via]
    job_id = pipeline.submit(CHAIN).job_id
    complete_once(pipeline, db, settings, sensor_instance, openai_server, hand_off, job_id)

    set_processing_as_the_seeds_api_does(db, job_id)
    gap = [tick(sensor_instance, db).run_requests for _ in range(2)]  # the sensor ticks while the hand-off starts
    hand_off(settings, job_id, 1)  # "Rerun Step Only" for step 2, seconds later

    if require_handoff:  # a job with no mark is not claimed: the gap is closed
        assert gap == [[], []]
    else:  # the first tick claimed the job before its rerun fields existed: a whole-job run, as in the issue
        [[claimed], []] = gap
        assert claimed.run_config == {}
        assert pipeline.run(job_id, run_config=claimed.run_config, tags=claimed.tags).success
        assert openai_server.requests("responses") == []  # it replayed every step: nothing asked
        row = pipeline.job(job_id)
        assert row["status"] == "processing" and CLAIM_ID not in row  # handed on, not completed
        assert (row[RERUN_STEP_INDEX], row[RERUN_CONTINUE]) == (1, False)
    rerun_is_asked_again(pipeline, db, sensor_instance, openai_server, job_id)


def test_a_job_marked_by_the_earlier_hand_off_is_claimed_in_the_gap_once(
    pipeline, db, settings, openai_server, sensor_instance, monkeypatch
):
    """A row completed under the earlier hand-off still carries its mark `true`: the tick in the gap claims it (the
    mark counts as handed over), the hand-off's fresh mark still reaches a run, and the mark is then consumed."""
    monkeypatch.setenv("IMAGEFLOW_REQUIRE_HANDOFF", "true")
    job_id = pipeline.submit(CHAIN).job_id
    assert pipeline.run(job_id).success
    db.update_item(db.jobs_table, {"job_id": job_id}, set_values={HANDOFF_MARK: True})
    openai_server.reset()

    set_processing_as_the_seeds_api_does(db, job_id)
    [claimed] = tick(sensor_instance, db).run_requests
    hand_over_by_state_machine(settings, job_id, 1)
    assert pipeline.run(job_id, run_config=claimed.run_config, tags=claimed.tags).success
    assert pipeline.job(job_id)["status"] == "processing"
    rerun_is_asked_again(pipeline, db, sensor_instance, openai_server, job_id)

    set_processing_as_the_seeds_api_does(db, job_id)  # processing again, not handed over (yet)
    assert tick(sensor_instance, db).run_requests == []


def test_a_failure_written_after_a_newer_hand_off_leaves_the_job_to_it(pipeline, db, settings):
    """A run that fails (or dies: the run-failure sensor writes the same) after a newer hand-off does not fail the
    job over it: the claim is released and the hand-off's rerun fields stay."""
    job_id = pipeline.submit(CHAIN).job_id
    assert claim_job(db, job_id, "claim_in_the_gap", ("processing",), 3600)
    hand_over_by_script(settings, job_id, 2)
    assert mark_failed(db, job_id, "boom", "RunFailed", claim_id="claim_in_the_gap") is Finish.HANDED_ON
    row = pipeline.job(job_id)
    assert row["status"] == "processing" and "error_message" not in row
    assert CLAIM_ID not in row and CLAIMED_HANDOFF not in row and row[RERUN_STEP_INDEX] == 2
    assert mark_failed(db, job_id, "late", "RunFailed", claim_id="claim_in_the_gap", only_if_processing=True)
    assert pipeline.job(job_id)[HANDOFF_MARK] == row[HANDOFF_MARK]  # a late write of the same run changes nothing
