"""steps/webhook_body.py: the auto payload, custom templates escaped per content type, Slack messages."""

import json
from decimal import Decimal
from urllib.parse import parse_qs
from xml.etree import ElementTree

import pytest

from imageflow_dagster.steps.webhook_body import (
    SLACK_TEXT_LIMIT,
    StepOutput,
    WebhookBodyError,
    WebhookData,
    auto_payload,
    custom_body,
    is_json_type,
    render_template,
    slack_message,
)
from imageflow_dagster.steps.webhook_config import DataSelection

HOSTILE = 'He said "hi" & <b>\nbye\'s'  # quotes, ampersand, markup, line break, apostrophe


def _output(index: int, text: str, image_only: bool = False, urls: tuple[str, ...] = ()) -> StepOutput:
    return StepOutput(f"Step {index}", index, text, f"art_{index}", list(urls), image_only)


def _data(*outputs: StepOutput, deliverable: tuple[int, ...] = (1,)) -> WebhookData:
    return WebhookData(
        job={
            "job_id": "job_1",
            "workflow_id": "wf_1",
            "status": "processing",
            "created_at": "t0",
            "execution_steps": [],
        },
        submission={"submission_id": "sub_1", "submission_data": {"name": HOSTILE, "age": Decimal("42")}},
        outputs=list(outputs),
        deliverable_indices=frozenset(deliverable),
        workflow_name="Lead magnet",
    )


def test_a_json_body_stays_valid_json_whatever_the_values_hold():
    template = '{"name": "{{ submission.name }}", "age": {{submission.age}}, "steps": {{steps}}}'
    document, sent = custom_body(template, _data(_output(1, "# Report")), "application/json; charset=utf-8")
    assert document == json.loads(sent)
    assert document["name"] == HOSTILE and document["age"] == 42
    assert document["steps"][0] == {
        "step_name": "Step 1",
        "step_index": 1,
        "output": "# Report",
        "artifact_id": "art_1",
        "image_urls": [],
    }


def test_a_form_body_keeps_each_value_inside_its_field():
    template = "name={{submission.name}}&job={{job.job_id}}&steps={{steps}}"
    _, sent = custom_body(template, _data(_output(1, "a&b=c")), "application/x-www-form-urlencoded")
    fields = parse_qs(sent.decode())
    assert fields["name"] == [HOSTILE] and fields["job"] == ["job_1"]
    assert json.loads(fields["steps"][0])[0]["output"] == "a&b=c"


@pytest.mark.parametrize(
    "content_type", ["application/xml", "text/xml; charset=utf-8", "application/atom+xml"]
)
def test_an_xml_body_escapes_markup_and_quotes(content_type):
    template = '<lead name="{{submission.name}}"><note>{{submission.name}}</note></lead>'
    _, sent = custom_body(template, _data(), content_type)
    lead = ElementTree.fromstring(sent)
    assert lead.find("note").text == HOSTILE
    assert lead.get("name") == HOSTILE.replace("\n", " ")  # XML normalises a line break in an attribute


def test_other_bodies_take_values_as_they_are_and_missing_ones_as_empty():
    rendered = render_template(
        "{{ a }}|{{missing}}|{{a.b}}|{{list.1}}|{{list.9}}|{{yes}}",
        {"a": HOSTILE, "list": ["x", "y"], "yes": True},
        "text/plain",
    )
    assert rendered == f"{HOSTILE}|||y||True"
    assert render_template("{{yes}}", {"yes": True}, "application/json") == "true"


def test_dynamodb_numbers_render_as_plain_numbers():
    variables = {"n": Decimal("3"), "f": Decimal("2.50"), "nested": {"v": [Decimal("1"), Decimal("0.5")]}}
    assert render_template("{{n}} {{f}} {{nested}}", variables, "application/json") == '3 2.5 {"v":[1,0.5]}'
    assert render_template("{{nested}}", variables, "text/plain") == '{"v":[1,0.5]}'


def test_a_custom_json_body_that_is_not_json_is_refused_with_the_reason():
    with pytest.raises(WebhookBodyError, match="not valid JSON for content type application/json"):
        custom_body('{"name": {{submission.name}}}', _data(), "application/json")  # unquoted string value


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/problem+json", True),
        ("text/json", False),
        ("text/plain", False),
        ("", False),
    ],
)
def test_json_content_types_are_recognised_by_media_type(content_type, expected):
    assert is_json_type(content_type) is expected


def test_the_auto_payload_has_the_seeds_keys_in_order():
    data = _data(_output(0, "brief"), _output(1, "# Report"), deliverable=(1,))
    payload = auto_payload(data, DataSelection())
    assert list(payload) == [
        "step_outputs",
        "job_info",
        "submission_data",
        "deliverable_context",
        "deliverable_steps",
    ]
    assert list(payload["step_outputs"]) == ["step_0", "step_1"]
    assert payload["job_info"] == {
        "job_id": "job_1",
        "workflow_id": "wf_1",
        "status": "processing",
        "created_at": "t0",
    }
    assert payload["deliverable_context"] == "# Report" and list(payload["deliverable_steps"]) == ["step_1"]


def test_the_auto_payload_leaves_out_what_the_selection_excludes():
    data = _data(_output(0, "brief"), _output(1, "# Report"), deliverable=(1,))
    selection = DataSelection(
        include_submission=False, include_job_info=False, exclude_step_indices=[Decimal("1")]
    )
    assert auto_payload(data, selection) == {"step_outputs": {"step_0": data.outputs[0].as_dict()}}


def test_image_only_and_empty_outputs_never_deliver():
    data = _data(_output(0, '{"images": []}', image_only=True), _output(1, ""), deliverable=(0, 1))
    assert data.deliverables == []
    assert "deliverable_context" not in auto_payload(data, DataSelection())


def test_a_slack_message_summarises_the_outputs_and_stays_under_slacks_limit():
    long_text = "x" * 700
    data = _data(_output(0, "short", urls=("https://img/1.png",)), _output(1, long_text))
    text = slack_message(data, "Notify")["text"]
    assert text.startswith('*Lead magnet*: job `job_1` reached step "Notify".')
    assert "*Step 1: Step 0*\nshort\n<https://img/1.png>" in text
    assert "x" * 600 + "…" in text and "x" * 601 not in text
    many = _data(*[_output(i, "y" * 600) for i in range(10)])
    assert len(slack_message(many, "Notify")["text"]) == SLACK_TEXT_LIMIT


@pytest.mark.parametrize(
    ("custom", "expected"),
    [
        ({"text": "as written", "blocks": []}, {"text": "as written", "blocks": []}),
        ({"message": "m" * 4000}, {"text": "m" * SLACK_TEXT_LIMIT}),
        ("plain words", {"text": "plain words"}),
    ],
)
def test_a_custom_slack_body_is_sent_as_written_within_the_limit(custom, expected):
    assert slack_message(_data(), "Notify", custom) == expected
