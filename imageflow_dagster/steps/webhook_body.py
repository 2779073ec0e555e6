"""What a webhook step sends: the seed's auto payload, custom body templates with the seed's variables (each value
escaped for the body's content type: JSON, form-encoded or XML) and Slack messages."""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus
from xml.sax.saxutils import escape as xml_escape

from imageflow_dagster.models.numbers import from_dynamo
from imageflow_dagster.steps.webhook_config import DataSelection

FORM_TYPE = "application/x-www-form-urlencoded"
SLACK_TEXT_LIMIT = 3000
_TOKEN = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


class WebhookBodyError(ValueError):
    """The step's body cannot be sent as configured."""


@dataclass(frozen=True)
class StepOutput:
    """What an earlier step hands to a webhook step."""

    step_name: str
    step_index: int
    output: str
    artifact_id: str | None
    image_urls: list[str]
    image_only: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "step_name": self.step_name,
            "step_index": self.step_index,
            "output": self.output,
            "artifact_id": self.artifact_id,
            "image_urls": self.image_urls,
        }


@dataclass(frozen=True)
class WebhookData:
    job: dict[str, Any]  # the job row as the step sees it (status `processing`)
    submission: dict[str, Any]  # the submission row
    outputs: list[StepOutput]  # the step's dependencies, in workflow order
    deliverable_indices: frozenset[int]
    workflow_name: str

    @property
    def deliverables(self) -> list[StepOutput]:
        return [o for o in self.outputs if o.step_index in self.deliverable_indices and not o.image_only and o.output]


def auto_payload(data: WebhookData, selection: DataSelection) -> dict[str, Any]:
    """The seed's auto payload, keys in its order."""
    payload: dict[str, Any] = {}
    kept = [o for o in data.outputs if o.step_index not in selection.exclude_step_indices]
    if kept:
        payload["step_outputs"] = {f"step_{o.step_index}": o.as_dict() for o in kept}
    if selection.include_job_info:
        keys = ("job_id", "workflow_id", "status", "created_at")
        payload["job_info"] = {key: data.job.get(key) for key in keys}
    if selection.include_submission:
        payload["submission_data"] = data.submission.get("submission_data") or {}
    deliverables = [o for o in data.deliverables if o.step_index not in selection.exclude_step_indices]
    if deliverables:
        payload["deliverable_context"] = "\n\n".join(o.output for o in deliverables)
        payload["deliverable_steps"] = {f"step_{o.step_index}": o.as_dict() for o in deliverables}
    return payload


def template_variables(data: WebhookData) -> dict[str, Any]:
    """The seed's template variables."""
    deliverables = data.deliverables
    return {
        "job": {k: v for k, v in data.job.items() if k != "execution_steps"},
        "submission": data.submission.get("submission_data") or {},
        "submission_meta": {k: v for k, v in data.submission.items() if k != "submission_data"},
        "steps": [o.as_dict() for o in data.outputs],
        "deliverable_context": "\n\n".join(o.output for o in deliverables),
        "deliverable_steps": {f"step_{o.step_index}": o.as_dict() for o in deliverables},
        "artifacts": [],
    }


def render_template(template: str, variables: dict[str, Any], content_type: str) -> str:
    """`{{ dotted.name }}` tokens replaced by their values (missing: empty), each escaped for `content_type`, so a
    value holding quotes, `&`, `<` or a line break cannot change the document's structure. A JSON body gets lists
    and objects as JSON; other bodies get them as escaped JSON text."""
    json_type = is_json_type(content_type)
    escape = value_escaper(content_type)

    def value_text(match: re.Match) -> str:
        value = _lookup(variables, match.group(1))
        if isinstance(value, (dict, list)):
            return to_json(value) if json_type else escape(to_json(value))
        if value is None:
            return ""
        if isinstance(value, bool) and json_type:
            return "true" if value else "false"
        return escape(str(from_dynamo(value)))

    return _TOKEN.sub(value_text, template)


def value_escaper(content_type: str) -> Callable[[str], str]:
    """How a text value is written into a body of `content_type`; other types take it as it is."""
    media = media_type(content_type)
    if is_json_type(media):
        return lambda text: json.dumps(text, ensure_ascii=False)[1:-1]  # the inside of a JSON string
    if media == FORM_TYPE:
        return lambda text: quote_plus(text, safe="")
    if media in ("application/xml", "text/xml") or media.endswith("+xml"):
        return lambda text: xml_escape(text, {'"': "&quot;", "'": "&apos;"})
    return str


def custom_body(template: str, data: WebhookData, content_type: str) -> tuple[Any, bytes]:
    """(what to record, bytes to send) of a custom body; a JSON content type needs a JSON document."""
    rendered = render_template(template, template_variables(data), content_type)
    if not is_json_type(content_type):
        return rendered, rendered.encode()
    try:
        document = json.loads(rendered)
    except ValueError as exc:
        raise WebhookBodyError(f"the custom body is not valid JSON for content type {content_type}: {exc}") from exc
    return document, rendered.encode()


def slack_message(data: WebhookData, step_name: str, custom: Any = None) -> dict[str, Any]:
    """A Slack incoming-webhook body: a custom JSON object carrying `text` is sent as written; otherwise a readable
    summary of the job and the outputs the step received."""
    if isinstance(custom, dict) and isinstance(custom.get("text"), str):
        return custom
    if isinstance(custom, dict) and isinstance(custom.get("message"), str):
        return {"text": custom["message"][:SLACK_TEXT_LIMIT]}
    if isinstance(custom, str) and custom.strip():
        return {"text": custom[:SLACK_TEXT_LIMIT]}
    lines = [f"*{data.workflow_name}*: job `{data.job.get('job_id')}` reached step \"{step_name}\"."]
    for output in data.outputs:
        excerpt = output.output if len(output.output) <= 600 else output.output[:600] + "…"
        lines.append(f"\n*Step {output.step_index + 1}: {output.step_name}*\n{excerpt}")
        lines += [f"<{url}>" for url in output.image_urls]
    return {"text": "\n".join(lines)[:SLACK_TEXT_LIMIT]}


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_json_type(content_type: str) -> bool:
    media = media_type(content_type)
    return media == "application/json" or media.endswith("+json")


def to_json(value: Any, indent: int | None = None) -> str:
    separators = None if indent else (",", ":")
    return json.dumps(from_dynamo(value), ensure_ascii=False, indent=indent, separators=separators, default=str)


def _lookup(variables: dict[str, Any], dotted: str) -> Any:
    """Walks dicts by key and lists by numeric index; anything missing is None."""
    value: Any = variables
    for part in dotted.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value
