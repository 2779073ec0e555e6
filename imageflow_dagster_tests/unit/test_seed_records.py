"""The seed's rows as imageflow reads them: DynamoDB numbers normalised at the boundary, lenient parsing of
what the seed's API stores, and the error a job gets when its records cannot run (flow/loading.py's rules, then
each step kind's, steps/kinds.py's check_steps; the reads are tested on moto)."""

from decimal import Decimal

import pytest
from pydantic import ValidationError

from imageflow_dagster.flow.errors import BadRecordError
from imageflow_dagster.flow.loading import parse_job, parse_submission, parse_workflow
from imageflow_dagster.flow.ordering import resolve_dependencies
from imageflow_dagster.models import UserSettings
from imageflow_dagster.models.job_inputs import JobInputs
from imageflow_dagster.models.workflow import ImageToolConfig, WorkflowStep
from imageflow_dagster.resources.dynamodb import deserialize_item, serialize_item
from imageflow_dagster.steps.kinds import check_steps

JOB = {
    "job_id": "job_1",
    "tenant_id": "t1",
    "workflow_id": "wf_1",
    "submission_id": "sub_1",
    "status": "pending",
}
WORKFLOW = {
    "workflow_id": "wf_1",
    "steps": [{"step_name": "Report", "instructions": "Write", "step_order": 1}],
}
SUBMISSION = {"submission_id": "sub_1", "form_id": "form_1", "submission_data": {"f_name": "Ada"}}


def _as_stored(row: dict | None) -> dict | None:
    """A row as DynamoDBResource returns it: through DynamoDB's wire format and back."""
    return None if row is None else deserialize_item(serialize_item(row))


def _load_error(job=JOB, workflow=WORKFLOW, submission=SUBMISSION) -> str:
    """The error the chain of rules gives, in the order of load_job_inputs and then check_steps."""
    with pytest.raises(BadRecordError) as caught:
        parsed_job = parse_job("job_1", _as_stored(job))
        parsed_workflow = parse_workflow(parsed_job.workflow_id, _as_stored(workflow))
        parsed_submission = parse_submission(parsed_job.submission_id, _as_stored(submission))
        dependencies = resolve_dependencies(parsed_workflow.steps)
        check_steps(JobInputs(parsed_job, parsed_workflow, parsed_submission, None, dependencies))
    return str(caught.value)


def test_dynamodb_numbers_come_back_as_ints_and_floats_never_decimal():
    wire = {
        "n": {"N": "2"},
        "f": {"N": "2.50"},
        "l": {"L": [{"N": "1"}, {"M": {"d": {"N": "0.1"}}}]},
        "ns": {"NS": ["3"]},
        "null": {"NULL": True},
    }
    assert deserialize_item(wire) == {"n": 2, "f": 2.5, "l": [1, {"d": 0.1}], "ns": [3], "null": None}
    assert type(deserialize_item(wire)["n"]) is int


def test_floats_are_written_as_the_decimal_they_print_as_and_none_is_left_out():
    assert serialize_item({"a": 0.1, "b": None, "c": [1.5, {"d": 2}], "e": True}) == {
        "a": {"N": "0.1"},
        "c": {"L": [{"N": "1.5"}, {"M": {"d": {"N": "2"}}}]},
        "e": {"BOOL": True},
    }


def test_a_job_that_parses_has_its_dependencies_resolved():
    job = parse_job("job_1", _as_stored(JOB))
    steps = parse_workflow(job.workflow_id, _as_stored(WORKFLOW)).steps
    assert (job.status, steps[0].step_order, resolve_dependencies(steps)) == ("pending", 1, {0: []})


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            {"job": {**JOB, "tenant_id": 7}},
            "Job job_1 is malformed: tenant_id: Input should be a valid string",
        ),
        (
            {"job": {k: v for k, v in JOB.items() if k != "status"}},
            "Job job_1 is malformed: status: Field required",
        ),
        (
            {"job": {**JOB, "tenant_id": "a/b"}},
            "Invalid tenant_id: tenant_id 'a/b' contains a path separator",
        ),
        ({"workflow": None}, "Workflow wf_1 not found"),
        ({"workflow": {"workflow_id": "wf_1", "steps": []}}, "Workflow wf_1 has no steps configured"),
        (
            {"workflow": {"workflow_id": "wf_1", "steps": "Report"}},
            "Workflow wf_1 is malformed: steps: Input should be a valid list",
        ),
        (
            {"workflow": {"workflow_id": "wf_1", "steps": [{"step_order": "first"}]}},
            "Workflow wf_1 is malformed: steps.0.step_order: Value error, "
            "step_order must be a whole number, got 'first'",
        ),
        (
            {"workflow": {"workflow_id": "wf_1", "steps": [{"instructions": 5}]}},
            "Workflow wf_1 is malformed: steps.0.instructions: Value error, expected text, got int",
        ),
        (
            {"workflow": {"workflow_id": "wf_1", "steps": [{"depends_on": [0]}]}},
            "Invalid workflow dependencies: step 1 (Step 1) depends on itself",
        ),
        (
            {"workflow": {"workflow_id": "wf_1", "steps": [{"step_name": " ", "step_type": "shell"}]}},
            "Workflow wf_1 step 1 (Step 1) has unsupported step_type 'shell'; "
            "imageflow runs ai_generation steps (text or image) and webhook steps",
        ),
        ({"submission": None}, "Submission sub_1 not found"),
        (
            {"submission": {**SUBMISSION, "submission_data": "Ada"}},
            "Submission sub_1 is malformed: submission_data: Input should be a valid dictionary",
        ),
    ],
)
def test_records_that_cannot_run_fail_the_job_with_a_message_a_person_can_act_on(rows, message):
    assert _load_error(**rows) == message


def test_numbers_stored_as_text_or_decimal_are_whole_numbers_and_booleans_are_not():
    step = WorkflowStep(
        step_order=Decimal("3"), depends_on="2", max_output_tokens="", tools="image_generation"
    )
    assert (step.step_order, step.depends_on, step.max_output_tokens, step.tools) == (
        3,
        [2],
        None,
        ["image_generation"],
    )
    with pytest.raises(ValidationError, match="step_order must be a number, got a boolean"):
        WorkflowStep(step_order=True)
    with pytest.raises(
        ValidationError, match=r"depends_on entry must be a whole number, got Decimal\('1.5'\)"
    ):
        WorkflowStep(depends_on=[Decimal("1.5")])


def test_the_image_tool_is_read_in_either_of_the_seeds_forms():
    assert WorkflowStep(tools=["image_generation"]).image_tool() == ImageToolConfig()
    tool = WorkflowStep(
        tools=[
            {"type": "web_search"},
            {"type": "image_generation", "format": "JPG", "compression": "80", "size": None},
        ]
    ).image_tool()
    assert (tool.format, tool.compression, tool.size, tool.output_format) == ("jpeg", 80, "auto", "jpeg")
    assert WorkflowStep(tools=["web_search", {"type": "file_search"}]).text_tools() == [
        {"type": "web_search"}
    ]
    assert WorkflowStep(tools=["web_search"]).image_tool() is None


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"format": "gif"}, "format must be png, jpeg or webp, got 'gif'"),
        ({"compression": 101}, "compression must be 0-100"),
    ],
)
def test_image_settings_the_images_api_cannot_take_are_refused(setting, message):
    with pytest.raises(ValidationError, match=message):
        ImageToolConfig(**setting)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"image_prompt_planner": {"instructions": "Mine", "model": "gpt-x", "enabled": "yes"}},
            {"instructions": "Mine"},
        ),
        ({"image_prompt_planner": {"instructions": "   ", "prompt": 5}}, None),  # blank or not text: unset
        ({"image_prompt_planner": {"enabled": False}}, {"enabled": False}),
        ({"image_prompt_planner": "Mine"}, None),
        ("not a map", None),
    ],
)
def test_a_tenants_planner_override_is_read_as_leniently_as_the_seed_reads_it(overrides, expected):
    override = UserSettings(tenant_id="t1", prompt_overrides=overrides).prompt_override(
        "image_prompt_planner"
    )
    assert (override.model_dump(exclude_none=True) if override else None) == expected
