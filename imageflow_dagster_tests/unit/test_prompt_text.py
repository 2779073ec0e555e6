"""The text a step's model is sent: the labelled submission and dependency blocks (flow/context.py) and a
tenant's planner override filled in (flow/prompt_overrides.py)."""

from imageflow_dagster.flow.context import dependency_block, labeled_submission, step_context
from imageflow_dagster.flow.prompt_overrides import UNATTENDED, fill, planner_prompts, with_guardrail
from imageflow_dagster.models import Form, PromptOverride, Submission


def test_the_context_labels_the_submission_then_lists_each_dependency_with_its_images():
    submission = Submission(
        submission_id="s1", submission_data={"f1": "Ada", "f2": ["a", "b"], "f3": {"k": 1}, "f4": 3}
    )
    form = Form(
        form_id="form_1",
        form_fields_schema={
            "fields": [
                {"field_id": "f1", "label": "Name"},
                {"field_id": "f2", "label": "Tags"},
                {"field_id": "f3"},
            ]
        },
    )
    fields = labeled_submission(submission, form)
    assert list(fields) == ["Name", "Tags", "f3", "f4"]  # a field without a label keeps its id
    block = dependency_block(
        1, "Brief", "the brief", ["https://i/2.png", "https://i/1.png", "https://i/2.png"]
    )
    assert step_context(fields, [block]) == (
        '=== Form Submission ===\nName: Ada\nTags: a, b\nf3: {"k": 1}\nf4: 3\n'
        "\n=== Step 1: Brief ===\nthe brief\n\nGenerated Images:\n- https://i/1.png\n- https://i/2.png"
    )
    assert labeled_submission(submission, None) == submission.submission_data


def test_placeholders_are_filled_once_and_unknown_ones_stay_as_written():
    values = {"step_name": "Logo {{context}}", "context": None}
    assert (
        fill("{{ step_name }} / {{unknown}} / {{context}}", values)
        == "Logo {{context}} / {{unknown}} / {{context}}"
    )


def test_a_tenants_override_replaces_the_planners_texts_with_the_guardrail_in_front():
    override = PromptOverride(instructions="Plan images for {{step_name}}", prompt="Input: {{planner_input}}")
    prompts = planner_prompts(
        override, "imageflow's instructions", "imageflow's input", {"step_name": "Logo"}
    )
    assert prompts.instructions == UNATTENDED + "Plan images for Logo"
    assert prompts.input == "Input: imageflow's input"
    assert prompts.overridden == ("instructions", "prompt")


def test_an_override_that_is_off_or_replaces_one_text_keeps_imageflows_other_text():
    off = planner_prompts(PromptOverride(enabled=False, instructions="x"), "mine", "input", {})
    assert (off.instructions, off.input, off.overridden) == ("mine", "input", ())
    prompt_only = planner_prompts(PromptOverride(prompt="P"), "mine", "input", {})
    assert (prompt_only.instructions, prompt_only.input, prompt_only.overridden) == ("mine", "P", ("prompt",))


def test_instructions_that_already_forbid_waiting_for_a_person_get_no_second_guardrail():
    assert with_guardrail("Plan JSON.") == UNATTENDED + "Plan JSON."
    assert (
        with_guardrail("There is NO USER INTERACTION. Plan JSON.")
        == "There is NO USER INTERACTION. Plan JSON."
    )
