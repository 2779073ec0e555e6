"""Webhook steps (`webhook_url`): one HTTP request with the seed's payload, recorded as the seed's `webhook`
execution step. Unlike the seed, a webhook that finally fails fails the job, like any other step."""

import time
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from imageflow_dagster.flow.errors import step_failure_message
from imageflow_dagster.flow.deliverable import deliverable_indices
from imageflow_dagster.flow.records import output_artifact_id
from imageflow_dagster.models import ExecutionStep
from imageflow_dagster.models.pipeline import StepPlan
from imageflow_dagster.models.workflow import WorkflowStep
from imageflow_dagster.steps.base import StepRun, blocked_by, invalid_settings, not_run, planned_output
from imageflow_dagster.steps.redaction import SLACK_HOST, redacted_headers, redacted_url
from imageflow_dagster.steps.webhook_body import (
    StepOutput,
    WebhookBodyError,
    WebhookData,
    auto_payload,
    custom_body,
    slack_message,
    to_json,
)
from imageflow_dagster.steps.webhook_config import WebhookConfig
from imageflow_dagster.steps.webhook_http import Delivery, Outgoing, deliver

NAME = "webhook"
MARKER = "webhook_url"


@dataclass(frozen=True)
class PreparedRequest:
    outgoing: Outgoing
    payload: Any  # what the body holds, as recorded


def check(step: WorkflowStep, where: str) -> None:
    try:
        webhook_config(step)
    except ValidationError as exc:
        raise invalid_settings(step, where, "webhook", exc) from exc


def webhook_config(step: WorkflowStep) -> WebhookConfig:
    return WebhookConfig.model_validate(step.model_extra or {})


def run(step_run: StepRun) -> StepPlan:
    started = time.monotonic()
    config = webhook_config(step_run.step)
    plan = step_run.new_plan("webhook")
    shown_url = redacted_url(target_url(config))
    blocked = blocked_by(step_run.deps, step_run.done)
    if blocked:
        not_run(plan, blocked)
        plan.entry = _entry(plan, config.webhook_method, shown_url, {}, None, Delivery())
        return plan
    try:
        prepared = prepare_request(config, webhook_data(step_run), plan.name)
    except WebhookBodyError as exc:
        plan.status, plan.error, plan.error_type = "failed", str(exc), "WebhookBodyInvalid"
        plan.entry = _entry(plan, config.webhook_method, shown_url, {}, None, Delivery(error=str(exc)))
        return plan
    outgoing = prepared.outgoing
    step_run.tools.progress.say(plan.number, f"Sending {outgoing.method} to {shown_url}...", "generating")
    delivery = deliver(outgoing, step_run.tools.webhooks)
    plan.output_text = f"Webhook sent to {shown_url}. Status: {delivery.status}"
    if not delivery.success:
        plan.status = "failed"
        plan.error_type = "WebhookRefused" if delivery.refused else "WebhookFailed"
        plan.error = delivery.error if delivery.refused else f"webhook {outgoing.method} {shown_url}: {delivery.error}"
    where = f"job={step_run.job.job_id} step={plan.number} ({plan.name})"
    step_run.tools.log.info(
        f"webhook {where} {outgoing.method} {shown_url} -> {delivery.status} after {delivery.attempts} attempt(s)"
    )
    plan.duration_ms = int((time.monotonic() - started) * 1000)
    plan.entry = _entry(plan, outgoing.method, shown_url, outgoing.headers, prepared.payload, delivery)
    return plan


def target_url(config: WebhookConfig) -> str:
    """The step's URL with its query params laid over the URL's own (the seed's rule); an unparsable URL is kept
    as written, for the guard to refuse."""
    try:
        url = httpx.URL(config.webhook_url.strip())
    except (httpx.InvalidURL, TypeError):
        return config.webhook_url
    return str(url.copy_merge_params(config.webhook_query_params)) if config.webhook_query_params else str(url)


def prepare_request(config: WebhookConfig, data: WebhookData, step_name: str) -> PreparedRequest:
    url = target_url(config)
    custom = config.body_mode == "custom" and (config.webhook_body or "").strip()
    custom_template = config.webhook_body if custom else None
    if _is_slack(url):
        custom = _slack_custom(custom_template, data) if custom_template else None
        payload = slack_message(data, step_name, custom)
        headers = {"Content-Type": "application/json"}  # Slack takes no custom headers
        return PreparedRequest(Outgoing("POST", url, headers, to_json(payload).encode()), payload)
    headers = dict(config.webhook_headers)
    if not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = config.webhook_content_type
    content_type = next(value for name, value in headers.items() if name.lower() == "content-type")
    if custom_template:
        payload, body = custom_body(custom_template, data, content_type)
    else:
        payload = auto_payload(data, config.webhook_data_selection)
        body = to_json(payload).encode()
    return PreparedRequest(Outgoing(config.webhook_method, url, headers, body), payload)


def webhook_data(step_run: StepRun) -> WebhookData:
    inputs = step_run.inputs
    outputs = [_step_output(step_run, step_run.done[d]) for d in sorted(step_run.deps)]
    return WebhookData(
        job={**inputs.job.model_dump(), "status": "processing"},
        submission=inputs.submission.model_dump(),
        outputs=outputs,
        deliverable_indices=frozenset(deliverable_indices(inputs.workflow.steps)),
        workflow_name=inputs.workflow.workflow_name or inputs.workflow.workflow_id,
    )


def _step_output(step_run: StepRun, dep: StepPlan) -> StepOutput:
    return StepOutput(
        step_name=dep.name,
        step_index=dep.index,
        output=planned_output(dep),
        artifact_id=output_artifact_id(step_run.job, dep),
        image_urls=[request.url for request in dep.image_requests],
        image_only=dep.kind == "image",
    )


def _slack_custom(template: str, data: WebhookData) -> Any:
    """A custom Slack body: a JSON object when it renders to one, else its text."""
    try:
        return custom_body(template, data, "application/json")[0]
    except WebhookBodyError:
        return custom_body(template, data, "text/plain")[0]


def _is_slack(url: str) -> bool:
    try:
        return httpx.URL(url).host == SLACK_HOST
    except (httpx.InvalidURL, TypeError):
        return False


def _entry(plan: StepPlan, method: str, shown_url: str, headers: dict, payload: Any, delivery: Delivery) -> dict:
    """The seed's webhook execution step, secrets masked, with the measured duration and the attempts made."""
    success = plan.status == "ok"
    error = None if success else step_failure_message(plan.number, plan.name, plan.error or plan.status)
    record = ExecutionStep(
        step_name=plan.name,
        step_order=plan.number,
        step_type=NAME,
        success=success,
        input={"method": method, "url": shown_url, "headers": redacted_headers(headers), "payload": payload},
        output={
            "response_status": delivery.status,
            "response_body": delivery.body_excerpt,
            "success": success,
            "error": None if success else plan.error,
        },
        timestamp=plan.started_at,
        duration_ms=plan.duration_ms,
    )
    record.attempts = delivery.attempts
    record.depends_on = [d + 1 for d in plan.depends_on]
    if not success:
        record.error, record.error_type = error, plan.error_type
    return record.model_dump(mode="json")
