"""A webhook step's settings as the seed's step editor stores them, checked when the workflow is loaded: headers
that HTTP cannot carry are refused then, naming the header and never quoting its value (often a credential)."""

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from imageflow_dagster.models.workflow import as_int

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP token
_HEADER_EDGES = " \t"  # optional whitespace around a value, not part of it (RFC 9110 5.5)


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

    # A refused header value must not reach an error message through pydantic's own rendering either.
    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)

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

    @field_validator("webhook_headers", mode="after")
    @classmethod
    def _sendable_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        return {name: sendable_header_value(name, value) for name, value in headers.items()}

    @field_validator("webhook_content_type", mode="before")
    @classmethod
    def _content_type(cls, value: Any) -> str:
        return sendable_header_value("Content-Type", str(value)) if value else "application/json"

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


def sendable_header_value(name: str, value: str) -> str:
    """`value` without surrounding blanks; raises ValueError, naming the header but not quoting the value, when
    HTTP cannot carry it: a control character (a pasted token often ends with a line break) or non-ASCII text."""
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"header name {name!r} is not a valid HTTP header name")
    value = value.strip(_HEADER_EDGES)
    for char in value:
        if ord(char) < 0x20 or ord(char) == 0x7F:
            raise ValueError(
                f"header {name!r} has a control character (U+{ord(char):04X}) in its value "
                "(a pasted value often ends with a line break); remove it"
            )
        if ord(char) > 0x7F:
            raise ValueError(f"header {name!r} has a non-ASCII character in its value; HTTP headers are ASCII")
    return value
