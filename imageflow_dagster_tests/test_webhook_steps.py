"""Webhook steps end to end (moto, the local OpenAI server, a real HTTP receiver on 127.0.0.1): what is sent, what
is recorded, the SSRF guard, retries and the failure policy; then the guard and the sender on their own (the newer
guards are in test_webhook_guards.py)."""

import json
from collections.abc import Iterator

import dagster as dg
import pytest

from imageflow_dagster.definitions import defs
from imageflow_dagster.flow.errors import BadRecordError
from imageflow_dagster.models.workflow import WorkflowStep
from imageflow_dagster.steps import ai_generation, handoff, webhook
from imageflow_dagster.steps.kinds import kind_of
from imageflow_dagster.steps.outbound import TargetRefused, checked_target
from imageflow_dagster.steps.redaction import REDACTED
from imageflow_dagster.steps.webhook_body import StepOutput, WebhookData
from imageflow_dagster.steps.webhook_config import WebhookConfig
from imageflow_dagster.steps.webhook_http import Outgoing, WebhookPolicy, deliver, parse_retry_after
from imageflow_dagster_tests.conftest import DEFAULT_ANSWERS
from imageflow_dagster_tests.settings_now import settings_now
from imageflow_dagster_tests.webhook_receivers import (
    Receiver,
    execution_steps,
    notify_workflow,
    running_receiver,
    webhook_step,
)
from imageflow_dagster_tests.workflows import image_step, text_step

ALLOW = "IMAGEFLOW_WEBHOOK_ALLOWED_HOSTS"
GUARD_TAIL = f"only public addresses are allowed unless the host is listed in {ALLOW}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as state:
        yield state


@pytest.fixture
def allow_receiver(monkeypatch, pipeline) -> None:
    monkeypatch.setenv(ALLOW, "127.0.0.1")
    pipeline.resources["settings"] = settings_now()


@pytest.fixture
def no_allow_list(monkeypatch, pipeline) -> None:
    monkeypatch.delenv(ALLOW, raising=False)
    pipeline.resources["settings"] = settings_now()


def test_text_then_webhook_sends_the_auto_payload_and_records_it_redacted(
    pipeline, settings, s3_client, receiver, allow_receiver
):
    workflow = notify_workflow(
        receiver.url(),
        webhook_headers={"Authorization": "Bearer s3cr3t-value", "X-Team": "growth"},
        webhook_query_params={"api_key": "q-secret-value", "source": "imageflow"},
    )
    workflow["steps"].append(text_step("Follow-up", "Write a follow-up note.", 2, depends_on=[1]))
    receiver.answer(200, b'{"accepted": "yes"}', Content_Type="application/json")
    job = pipeline.submit(workflow)
    assert pipeline.run(job.job_id).success
    assert pipeline.job(job.job_id)["status"] == "completed"

    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hook?api_key=q-secret-value&source=imageflow"
    assert request.headers["authorization"] == "Bearer s3cr3t-value"
    assert request.headers["x-team"] == "growth"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"

    steps = execution_steps(pipeline, s3_client, settings, job)
    assert [s["step_type"] for s in steps] == ["form_submission", "ai_generation", "webhook", "ai_generation", "final_output"]
    research, sent, follow_up = steps[1:4]
    payload = request.json()
    assert list(payload) == ["step_outputs", "job_info", "submission_data"]
    assert payload["job_info"]["job_id"] == job.job_id
    assert payload["job_info"]["workflow_id"] == job.workflow_id
    assert payload["job_info"]["status"] == "processing"
    assert payload["submission_data"] == DEFAULT_ANSWERS
    research_artifact = next(a for a in pipeline.artifacts(job.job_id) if a["artifact_name"] == "step_1_research.md")
    assert payload["step_outputs"] == {
        "step_0": {
            "step_name": "Research",
            "step_index": 0,
            "output": research["output"],
            "artifact_id": research_artifact["artifact_id"],
            "image_urls": [],
        }
    }

    shown_url = f"http://127.0.0.1:{receiver.port}/hook?api_key={REDACTED}&source=imageflow"
    assert sent["step_name"] == "Notify CRM" and sent["step_order"] == 2 and sent["success"] is True
    assert sent["input"]["method"] == "POST"
    assert sent["input"]["url"] == shown_url
    assert sent["input"]["headers"] == {  # only allow-listed headers are shown: any other may be a credential
        "Authorization": REDACTED,
        "X-Team": REDACTED,
        "Content-Type": "application/json",
    }
    assert sent["input"]["payload"] == payload
    assert sent["output"] == {
        "response_status": 200,
        "response_body": '{"accepted": "yes"}',
        "success": True,
        "error": None,
    }
    assert isinstance(sent["duration_ms"], int) and sent["timestamp"].endswith("Z")
    assert sent["attempts"] == 1
    recorded = json.dumps(steps)
    assert "s3cr3t-value" not in recorded and "q-secret-value" not in recorded
    # What a step depending on the webhook sees: the seed's summary line.
    assert f"Webhook sent to {shown_url}. Status: 200" in follow_up["input"]["context"]


def test_custom_body_values_are_json_escaped(pipeline, receiver, allow_receiver, s3_client, settings):
    answers = {
        "name": 'Ada "The Countess" Lovelace',
        "company": "Acme\\Analytics",
        "note": "first line\nsecond line\ttabbed",
        "email": "ada@example.com",
    }
    template = (
        '{"job": "{{ job.job_id }}", "who": "{{ submission.name }}", "company": "{{ submission.company }}", '
        '"note": "{{ submission.note }}", "email": "{{submission.email}}", "research": "{{ steps.0.output }}", '
        '"missing": "{{ submission.nothing }}", "all": {{ submission }}}'
    )
    job = pipeline.submit(notify_workflow(receiver.url(), webhook_body_mode="custom", webhook_body=template), answers)
    assert pipeline.run(job.job_id).success

    [request] = receiver.requests
    body = request.json()  # valid JSON despite the quotes, backslash and newlines in the values
    research = execution_steps(pipeline, s3_client, settings, job)[1]["output"]
    assert "\n" in research
    assert body == {
        "job": job.job_id,
        "who": answers["name"],
        "company": answers["company"],
        "note": answers["note"],
        "email": answers["email"],
        "research": research,
        "missing": "",
        "all": answers,
    }


def test_custom_body_that_is_not_json_fails_the_step_and_sends_nothing(pipeline, receiver, allow_receiver):
    template = '{"who": {{ submission.name }}}'  # unquoted text: not JSON
    job = pipeline.submit(notify_workflow(receiver.url(), webhook_body_mode="custom", webhook_body=template))
    assert not pipeline.run(job.job_id).success
    row = pipeline.job(job.job_id)
    assert row["status"] == "failed" and row["error_type"] == "WebhookBodyInvalid"
    assert row["error_message"].startswith(
        "Step 2 (Notify CRM) failed: the custom body is not valid JSON for content type application/json: "
    )
    assert receiver.requests == []


@pytest.mark.parametrize(
    "target, shown",
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 (169.254.169.254) is link-local"),
        ("http://127.0.0.1:{port}/", "127.0.0.1 (127.0.0.1) is loopback"),
        ("http://localhost:{port}/", "localhost (127.0.0.1) is loopback"),
    ],
    ids=["metadata-service", "loopback-ip", "name-resolving-to-loopback"],
)
def test_private_targets_are_refused_and_nothing_is_sent(pipeline, receiver, no_allow_list, target, shown):
    job = pipeline.submit(notify_workflow(target.format(port=receiver.port)))
    assert not pipeline.run(job.job_id).success
    row = pipeline.job(job.job_id)
    assert row["status"] == "failed" and row["error_type"] == "WebhookRefused"
    assert row["error_message"] == f"Step 2 (Notify CRM) failed: webhook target {shown}; {GUARD_TAIL}"
    assert receiver.requests == []


def test_a_failing_receiver_is_retried_a_bounded_number_of_times_then_fails_the_job(
    pipeline, receiver, allow_receiver, s3_client, settings
):
    for _ in range(5):
        receiver.answer(500, b"upstream broke")
    workflow = notify_workflow(receiver.url())
    workflow["steps"].append(text_step("Follow-up", "Write a follow-up note.", 2, depends_on=[1]))
    job = pipeline.submit(workflow)
    assert not pipeline.run(job.job_id).success

    assert len(receiver.requests) == 3  # the first try and two retries
    row = pipeline.job(job.job_id)
    assert row["status"] == "failed" and row["error_type"] == "WebhookFailed"
    assert row["error_message"] == (
        f"Step 2 (Notify CRM) failed: webhook POST {receiver.url()}: HTTP 500 (after 3 attempts)"
    )
    sent, follow_up = execution_steps(pipeline, s3_client, settings, job)[2:]
    assert sent["success"] is False and sent["attempts"] == 3
    assert sent["output"]["response_status"] == 500 and sent["output"]["response_body"] == "upstream broke"
    assert sent["error"] == row["error_message"]
    assert follow_up["success"] is False and "not run because step 2 (Notify CRM)" in follow_up["error"]


def test_a_receiver_busy_once_is_retried_and_the_job_completes(pipeline, receiver, allow_receiver, s3_client, settings):
    receiver.answer(503, b"busy", Retry_After="0")
    job = pipeline.submit(notify_workflow(receiver.url()))
    assert pipeline.run(job.job_id).success
    assert pipeline.job(job.job_id)["status"] == "completed"
    assert len(receiver.requests) == 2
    sent = execution_steps(pipeline, s3_client, settings, job)[2]
    assert (sent["output"]["response_status"], sent["attempts"], sent["success"]) == (200, 2, True)


def test_a_redirect_to_a_refused_address_is_not_followed(pipeline, receiver, allow_receiver):
    # localhost is the receiver too, but only 127.0.0.1 is allow-listed: following would reach it a second time.
    receiver.answer(302, Location=receiver.url("/followed", host="localhost"))
    job = pipeline.submit(notify_workflow(receiver.url()))
    assert not pipeline.run(job.job_id).success
    assert [r.path for r in receiver.requests] == ["/hook"]
    row = pipeline.job(job.job_id)
    assert row["error_message"] == (
        f"Step 2 (Notify CRM) failed: redirected to {receiver.url('/followed', host='localhost')}: "
        f"webhook target localhost (127.0.0.1) is loopback; {GUARD_TAIL}"
    )


def test_a_step_with_webhook_and_handoff_fails_the_job_before_anything_runs(
    pipeline, receiver, allow_receiver, openai_server
):
    job = pipeline.submit(notify_workflow(receiver.url(), handoff_workflow_id="wf_other"))
    assert not pipeline.run(job.job_id).success
    row = pipeline.job(job.job_id)
    assert (row["status"], row["error_type"]) == ("failed", "InvalidJobRecord")
    assert row["error_message"] == (
        f"Workflow {job.workflow_id} step 2 (Notify CRM) has both webhook_url and handoff_workflow_id; "
        "a step is either a webhook or a handoff, not both"
    )
    assert receiver.requests == [] and openai_server.requests() == []


def test_an_image_step_hands_its_planned_urls_to_a_webhook(pipeline, receiver, allow_receiver, s3_client, settings):
    tool = {"model": "gpt-image-2.6-sunburst", "size": "1024x1024", "quality": "low", "format": "png"}
    workflow = {
        "workflow_name": "Images then notify",
        "steps": [image_step("Brand Images", "Create 1 image.", 0, **tool), webhook_step("Notify", 1, receiver.url())],
    }
    job = pipeline.submit(workflow)
    assert pipeline.run(job.job_id).success
    images = execution_steps(pipeline, s3_client, settings, job)[1]
    sent = receiver.requests[0].json()["step_outputs"]["step_0"]
    assert sent["image_urls"] == images["image_urls"] and len(sent["image_urls"]) == 1
    assert json.loads(sent["output"])["images"][0]["url"] == images["image_urls"][0]


def test_a_job_whose_form_row_is_missing_completes_with_field_ids(pipeline, s3_client, settings):
    job = pipeline.submit({"workflow_name": "No form", "steps": [text_step("Research", "Research.", 0)]})
    pipeline.db.get_client().delete_item(TableName=pipeline.db.forms_table, Key={"form_id": {"S": job.form_id}})
    assert pipeline.run(job.job_id).success
    assert pipeline.job(job.job_id)["status"] == "completed"
    form_step = execution_steps(pipeline, s3_client, settings, job)[0]
    assert form_step["input"] == DEFAULT_ANSWERS  # labels fall back to the field ids


# --- the parts on their own -------------------------------------------------------------------------------


def test_step_kinds_are_recognised_as_the_seed_does():
    assert kind_of(WorkflowStep(step_name="a", webhook_url="https://example.com/h"), "w") is webhook
    assert kind_of(WorkflowStep(step_name="a", handoff_workflow_id="wf_2"), "w") is handoff
    assert kind_of(WorkflowStep(step_name="a", webhook_url="", step_type="ai_generation"), "w") is ai_generation
    with pytest.raises(BadRecordError, match="has both webhook_url and handoff_workflow_id"):
        kind_of(WorkflowStep(step_name="a", webhook_url="https://x.test", handoff_workflow_id="wf_2"), "w")
    with pytest.raises(BadRecordError, match=r"w \(a\) has step_type 'webhook' but no webhook_url"):
        ai_generation.check(WorkflowStep(step_name="a", step_type="webhook"), "w")
    with pytest.raises(BadRecordError, match="webhook_method"):
        webhook.check(WorkflowStep(step_name="a", webhook_url="https://x.test", webhook_method="TRACE"), "w")


def _resolving(*addresses: str):
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    "addresses, reason",
    [
        (["10.0.0.5"], "10.0.0.5) is private"),
        (["93.184.216.34", "10.0.0.5"], "10.0.0.5) is private"),  # any resolved address counts
        (["::ffff:127.0.0.1"], "::ffff:127.0.0.1) is loopback"),
        (["fd00::1"], "fd00::1) is private"),
        (["fe80::1"], "fe80::1) is link-local"),
        (["::1"], "::1) is loopback"),
        (["0.0.0.0"], "0.0.0.0) is unspecified"),
        (["224.0.0.1"], "224.0.0.1) is multicast"),
        (["240.0.0.1"], "240.0.0.1) is reserved"),
        (["100.64.0.1"], "100.64.0.1) is shared address space (carrier-grade NAT)"),
    ],
)
def test_the_guard_refuses_names_resolving_to_non_public_addresses(addresses, reason):
    with pytest.raises(TargetRefused) as refused:
        checked_target("https://hooks.internal.test/x", (), resolve=_resolving(*addresses))
    assert str(refused.value) == f"webhook target hooks.internal.test ({reason}; {GUARD_TAIL}"


def test_the_guard_accepts_public_and_allow_listed_targets_and_only_http():
    public = checked_target("https://api.example.com/x", (), resolve=_resolving("93.184.216.34"))
    assert (public.address, public.port, public.host) == ("93.184.216.34", 443, "api.example.com")
    allowed = checked_target("http://crm.internal/x", ("CRM.internal",), resolve=_resolving("10.0.0.5"))
    assert allowed.address == "10.0.0.5"
    assert checked_target("http://10.0.0.5/x", ("10.0.0.5",), resolve=_resolving("10.0.0.5")).address == "10.0.0.5"
    assert checked_target("http://[fd00::1]/x", ("[fd00::1]",), resolve=_resolving("fd00::1")).address == "fd00::1"
    with pytest.raises(TargetRefused, match="is private"):  # an allowed address does not admit other names
        checked_target("http://crm.internal/x", ("10.0.0.5",), resolve=_resolving("10.0.0.5"))
    for url in ("ftp://example.com/x", "file:///etc/passwd", "gopher://example.com"):
        with pytest.raises(TargetRefused, match="is not allowed; use http or https"):
            checked_target(url, (), resolve=_resolving("93.184.216.34"))


def test_the_request_goes_to_the_checked_address_with_the_original_host(receiver):
    """`hook.test` exists in no DNS: the request can only arrive through the address the guard resolved."""
    policy = WebhookPolicy(allowed_hosts=("hook.test",), resolve=_resolving("127.0.0.1"))
    delivery = deliver(Outgoing("POST", f"http://hook.test:{receiver.port}/x", {}, b"{}"), policy)
    assert delivery.success
    assert receiver.requests[0].headers["host"] == f"hook.test:{receiver.port}"


def test_an_allowed_redirect_is_followed_with_its_method_and_credentials_kept_on_the_same_host(receiver):
    receiver.answer(307, Location="/second")
    policy = WebhookPolicy(allowed_hosts=("127.0.0.1",))
    outgoing = Outgoing("POST", receiver.url("/first"), {"Authorization": "Bearer t"}, b'{"a": 1}')
    delivery = deliver(outgoing, policy)
    assert (delivery.success, delivery.status, delivery.attempts) == (True, 200, 1)
    assert [(r.method, r.path, r.body, r.headers["authorization"]) for r in receiver.requests] == [
        ("POST", "/first", b'{"a": 1}', "Bearer t"),
        ("POST", "/second", b'{"a": 1}', "Bearer t"),
    ]


def test_a_refused_connection_is_retried_then_reported(receiver):
    waits: list[float] = []
    policy = WebhookPolicy(allowed_hosts=("127.0.0.1",), sleep=waits.append)
    delivery = deliver(Outgoing("POST", "http://127.0.0.1:9/x", {}, b"{}"), policy)  # port 9: nothing listens
    assert not delivery.success and delivery.status is None and delivery.attempts == 3
    assert delivery.error.startswith("could not connect: ") and delivery.error.endswith("(after 3 attempts)")
    assert waits == [0.5, 1.0]


def test_retry_after_is_honoured_up_to_the_cap(receiver):
    waits: list[float] = []
    receiver.answer(429, Retry_After="3")
    receiver.answer(429, Retry_After="3600")
    policy = WebhookPolicy(allowed_hosts=("127.0.0.1",), sleep=waits.append, retry_after_cap_s=10)
    assert deliver(Outgoing("POST", receiver.url(), {}, b"{}"), policy).success
    assert waits == [3.0, 10.0] and len(receiver.requests) == 3
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0 and parse_retry_after("soon") is None


def test_slack_urls_get_a_readable_text_message():
    config = WebhookConfig(webhook_url="https://hooks.slack.com/services/T1/B2/XYZ", webhook_headers={"X-Key": "k"})
    output = StepOutput("Research", 0, "Acme sells analytics.", "art_1", [], image_only=False)
    data = WebhookData(
        job={"job_id": "job_1", "workflow_id": "wf_1", "status": "processing"},
        submission={"submission_data": {"name": "Ada"}},
        outputs=[output],
        deliverable_indices=frozenset({1}),
        workflow_name="Brand kit",
    )
    prepared = webhook.prepare_request(config, data, "Tell the team")
    assert (prepared.outgoing.method, prepared.outgoing.headers) == ("POST", {"Content-Type": "application/json"})
    text = json.loads(prepared.outgoing.body)["text"]
    assert text == '*Brand kit*: job `job_1` reached step "Tell the team".\n\n*Step 1: Research*\nAcme sells analytics.'


def test_a_job_with_a_webhook_step_goes_through_the_sensor(pipeline, db, receiver, allow_receiver):
    """The sensor claims the job (before, it failed it as a bad record) and its run calls the receiver once."""
    job = pipeline.submit(notify_workflow(receiver.url()))
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), definitions=defs,
                                          resources={"dynamodb": db, "settings": settings_now()})
        [request] = defs.resolve_sensor_def("processing_jobs_sensor").evaluate_tick(context).run_requests
    assert request.partition_key == job.job_id
    assert pipeline.run(job.job_id, run_config=request.run_config, tags=request.tags).success
    assert pipeline.job(job.job_id)["status"] == "completed"
    assert [(r.method, r.json()["job_info"]["job_id"]) for r in receiver.requests] == [("POST", job.job_id)]
