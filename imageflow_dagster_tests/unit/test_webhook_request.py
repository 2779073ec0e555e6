"""A webhook step's settings checked at load time, the request it prepares (nothing sent), and Retry-After."""

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from imageflow_dagster.flow.errors import BadRecordError
from imageflow_dagster.models.workflow import WorkflowStep
from imageflow_dagster.steps import handoff, webhook
from imageflow_dagster.steps.kinds import kind_of
from imageflow_dagster.steps.webhook_body import StepOutput, WebhookData
from imageflow_dagster.steps.webhook_config import WebhookConfig
from imageflow_dagster.steps.webhook_http import parse_retry_after

WHERE = "Workflow wf_1 step 2"
SECRET = "sk-live-0123456789abcdef"


def _load_error(**fields) -> str:
    """What the job's error_message says when its workflow holds this step."""
    step = WorkflowStep(step_name="Notify", **fields)
    with pytest.raises(BadRecordError) as caught:
        kind_of(step, WHERE).check(step, WHERE)
    return str(caught.value)


def test_a_header_value_with_a_line_break_is_refused_naming_the_header_not_its_value():
    error = _load_error(
        webhook_url="https://hooks.example/x", webhook_headers={"Authorization": f"Bearer {SECRET}\n"}
    )
    assert error.startswith(f"{WHERE} (Notify) has invalid webhook settings: webhook_headers: ")
    assert "header 'Authorization' has a control character (U+000A)" in error
    assert SECRET not in error


def test_a_non_ascii_header_value_and_a_bad_header_name_are_refused():
    assert "non-ASCII character" in _load_error(
        webhook_url="https://h.example", webhook_headers={"X-Name": "Zoë"}
    )
    assert "'Bad Name' is not a valid HTTP header name" in _load_error(
        webhook_url="https://h.example", webhook_headers={"Bad Name": "v"}
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"webhook_method": "fetch"},
            "webhook_method: Value error, webhook_method must be one of GET, POST, PUT",
        ),
        ({"webhook_body_mode": "template"}, "webhook_body_mode must be auto or custom, got 'template'"),
        ({"webhook_headers": ["X-A"]}, "expected a map of names to values, got list"),
        (
            {"webhook_data_selection": {"exclude_step_indices": ["two"]}},
            "exclude_step_indices entry must be a whole number",
        ),
    ],
)
def test_malformed_webhook_settings_name_the_field_and_the_problem(fields, message):
    assert message in _load_error(webhook_url="https://h.example", **fields)


def test_a_step_with_both_a_webhook_and_a_handoff_is_refused():
    error = _load_error(webhook_url="https://h.example", handoff_workflow_id="wf_2")
    assert error == (
        f"{WHERE} (Notify) has both webhook_url and handoff_workflow_id; "
        "a step is either a webhook or a handoff, not both"
    )


def test_the_step_kind_follows_the_seeds_marker_fields():
    assert kind_of(WorkflowStep(webhook_url="https://h.example"), WHERE) is webhook
    assert kind_of(WorkflowStep(handoff_workflow_id="wf_2"), WHERE) is handoff
    assert kind_of(WorkflowStep(webhook_url=""), WHERE).NAME == "ai_generation"


def test_settings_are_read_as_the_seeds_editor_stores_them():
    config = WebhookConfig(
        webhook_url="https://h.example",
        webhook_method=" patch ",
        webhook_headers={" X-Empty ": None, "": "dropped", "X-Pad": "\t v \t"},
        webhook_content_type=None,
        webhook_body="{}",
    )
    assert config.webhook_method == "PATCH"
    assert config.webhook_headers == {"X-Empty": "", "X-Pad": "v"}
    assert config.webhook_content_type == "application/json"
    assert config.body_mode == "custom"  # a body without a mode means custom
    assert WebhookConfig(webhook_url="u", webhook_body="{}", webhook_body_mode="auto").body_mode == "auto"


def _data() -> WebhookData:
    output = StepOutput("Report", 0, "# Report", "art_0", [], False)
    return WebhookData(
        {"job_id": "job_1"}, {"submission_data": {"email": "a@b.example"}}, [output], frozenset({0}), "WF"
    )


def test_query_params_are_laid_over_the_urls_own():
    config = WebhookConfig(
        webhook_url=" https://h.example/in?a=1&b=2 ", webhook_query_params={"b": "3", "c": "x y"}
    )
    assert webhook.target_url(config) == "https://h.example/in?a=1&b=3&c=x+y"


def test_an_auto_request_sends_the_payload_as_compact_json_with_the_steps_headers():
    config = WebhookConfig(
        webhook_url="https://h.example/in", webhook_headers={"X-Key": "k"}, webhook_method="PUT"
    )
    prepared = webhook.prepare_request(config, _data(), "Notify")
    outgoing = prepared.outgoing
    assert (outgoing.method, outgoing.url) == ("PUT", "https://h.example/in")
    assert outgoing.headers == {"X-Key": "k", "Content-Type": "application/json"}
    assert outgoing.body == json.dumps(prepared.payload, separators=(",", ":")).encode()
    assert prepared.payload["step_outputs"]["step_0"]["output"] == "# Report"


def test_a_content_type_header_wins_over_the_content_type_setting_for_escaping():
    config = WebhookConfig(
        webhook_url="https://h.example/in",
        webhook_headers={"content-type": "application/x-www-form-urlencoded"},
        webhook_content_type="application/json",
        webhook_body="email={{submission.email}}",
    )
    outgoing = webhook.prepare_request(config, _data(), "Notify").outgoing
    assert outgoing.body == b"email=a%40b.example"
    assert outgoing.headers == {"content-type": "application/x-www-form-urlencoded"}


def test_a_slack_webhook_gets_a_slack_message_and_no_custom_headers():
    config = WebhookConfig(
        webhook_url="https://hooks.slack.com/services/T0/B0/x",
        webhook_headers={"X-Key": "k"},
        webhook_method="PUT",
        webhook_body="New lead: {{submission.email}}",
    )
    outgoing = webhook.prepare_request(config, _data(), "Notify").outgoing
    assert (outgoing.method, outgoing.headers) == ("POST", {"Content-Type": "application/json"})
    assert json.loads(outgoing.body) == {"text": "New lead: a@b.example"}


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), (" 12 ", 12.0), (None, None), ("", None), ("soon", None), ("-3", None), ("1.5", None)],
)
def test_retry_after_reads_delta_seconds_and_nothing_else_unreadable(header, expected):
    assert parse_retry_after(header) == expected


def test_retry_after_reads_an_http_date_as_the_wait_until_then():
    later = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert 25 <= parse_retry_after(format_datetime(later, usegmt=True)) <= 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date past: no wait
