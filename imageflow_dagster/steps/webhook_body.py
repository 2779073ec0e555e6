"""What a webhook step sends: its settings as the seed's step editor stores them, the seed's auto payload, custom
body templates with the seed's variables (values JSON-escaped for JSON content types) and Slack messages."""

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from imageflow_dagster.models.workflow import as_int

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SLACK_TEXT_LIMIT = 3000
_TOKEN = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


class WebhookBodyError(ValueError):
    """The step's body cannot be sent as configured."""


class DataSelection(BaseModel):
    include_submission: bool = True
    include_job_info: bool = True
    exclude_step_indices: list[int] = Field(default_factory=list)

    @field_validator("exclude_step_indices", mode="before")
    @classmethod
    def _indices(cls, value: Any) -> list[int]:
        return [as_int(item, "exclude_step_indices entry") for item in value or []]


class WebhookConfig(BaseModel):
    """The `webhook_*` fields of a workflow step."""

    model_config = ConfigDict(extra="ignore")

    webhook_url: str
    webhook_method: str = "POST"
    webhook_headers: dict[str, str] = Field(default_factory=dict)
    webhook_query_params: dict[str, str] = Field(default_factory=dict)
    webhook_content_type: str = "application/json"
    webhook_body_mode: str | None = None
    webhook_body: str | None = None
    webhook_data_selection: DataSelection = Field(default_factory=DataSelection)

    @field_validator("webhook_method", mode="before")
    @classmethod
    def _method(cls, value: Any) -> str:
        method = str(value or "POST").strip().upper()
        if method not in METHODS:
            raise ValueError(f"webhook_method must be one of {', '.join(METHODS)}, got {value!r}")
        return method

    @field_validator("webhook_headers", "webhook_query_params", mode="before")
    @classmethod
    def _text_map(cls, value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError(f"expected a map of names to values, got {type(value).__name__}")
        return {str(k).strip(): "" if v is None else str(v) for k, v in value.items() if str(k).strip()}

    @field_validator("webhook_content_type", mode="before")
    @classmethod
    def _content_type(cls, value: Any) -> str:
        return str(value).strip() if value else "application/json"

    @field_validator("webhook_data_selection", mode="before")
    @classmethod
    def _selection(cls, value: Any) -> Any:
        return value or {}

    @field_validator("webhook_body_mode", mode="after")
    @classmethod
    def _mode(cls, value: str | None) -> str | None:
        if value not in (None, "", "auto", "custom"):
            raise ValueError(f"webhook_body_mode must be auto or custom, got {value!r}")
        return value or None

    @property
    def body_mode(self) -> str:
        """The seed's rule: an explicit mode wins; without one, a body means custom."""
        return self.webhook_body_mode or ("custom" if self.webhook_body else "auto")


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


def render_template(template: str, variables: dict[str, Any], json_escaped: bool) -> str:
    """`{{ dotted.name }}` tokens replaced by their values (missing: empty). With `json_escaped`, a text value is
    escaped to sit inside a JSON string, so quotes, backslashes and newlines cannot break the document."""

    def value_text(match: re.Match) -> str:
        value = _lookup(variables, match.group(1))
        if isinstance(value, (dict, list)):
            return to_json(value)
        if value is None:
            return ""
        if isinstance(value, bool) and json_escaped:
            return "true" if value else "false"
        text = str(_plain(value))
        return json.dumps(text, ensure_ascii=False)[1:-1] if json_escaped else text

    return _TOKEN.sub(value_text, template)


def custom_body(template: str, data: WebhookData, content_type: str) -> tuple[Any, bytes]:
    """(what to record, bytes to send) of a custom body; a JSON content type needs a JSON document."""
    json_type = is_json_type(content_type)
    rendered = render_template(template, template_variables(data), json_escaped=json_type)
    if not json_type:
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


def is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def to_json(value: Any, indent: int | None = None) -> str:
    separators = None if indent else (",", ":")
    return json.dumps(_plain(value), ensure_ascii=False, indent=indent, separators=separators, default=str)


def _plain(value: Any) -> Any:
    """DynamoDB numbers (Decimal) as ints or floats, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == int(value) else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


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
