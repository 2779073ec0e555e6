from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Values the seed's UI may store as "let the API choose"; such settings are not sent to the Images API.
AUTO = "auto"


def as_int(value: Any, what: str) -> int:
    """DynamoDB hands numbers back as Decimal and the seed's API sometimes stores them as strings."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, (float, Decimal)) and value == int(value):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValueError(f"{what} must be a whole number, got {value!r}")


class ImageToolConfig(BaseModel):
    """The step's `image_generation` tool, as the seed's step editor stores it."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    size: str = AUTO
    quality: str = AUTO
    background: str | None = None
    format: str | None = None
    compression: int | None = None
    input_fidelity: str | None = None

    @field_validator("compression", mode="before")
    @classmethod
    def _compression_int(cls, value: Any) -> int | None:
        if value is None or value == "":
            return None
        number = as_int(value, "image tool compression")
        if not 0 <= number <= 100:
            raise ValueError(f"image tool compression must be 0-100, got {number}")
        return number

    @field_validator("format", mode="before")
    @classmethod
    def _format_known(cls, value: Any) -> str | None:
        if value in (None, "", AUTO):
            return None
        normalized = str(value).lower()
        normalized = "jpeg" if normalized == "jpg" else normalized
        if normalized not in ("png", "jpeg", "webp"):
            raise ValueError(f"image tool format must be png, jpeg or webp, got {value!r}")
        return normalized

    @field_validator("size", "quality", mode="before")
    @classmethod
    def _default_auto(cls, value: Any) -> str:
        return AUTO if value in (None, "") else str(value)

    @property
    def output_format(self) -> str:
        return self.format or "png"

    def seed_config(self) -> dict[str, Any]:
        """The `image_config` block of the seed's image-step output JSON."""
        return {
            "size": self.size,
            "quality": self.quality,
            "background": self.background,
            "format": self.format,
            "compression": self.compression,
        }


class WorkflowStep(BaseModel):
    model_config = ConfigDict(extra="allow")

    step_name: str = ""
    step_type: str | None = None
    model: str | None = None
    instructions: str = ""
    step_order: int | None = None
    depends_on: list[int] | None = None
    tools: list[str | dict[str, Any]] | None = None
    reasoning_effort: str | None = None
    max_output_tokens: int | None = None
    is_deliverable: bool | None = None

    @field_validator("step_order", mode="before")
    @classmethod
    def _order_int(cls, value: Any) -> int | None:
        return None if value is None else as_int(value, "step_order")

    @field_validator("max_output_tokens", mode="before")
    @classmethod
    def _max_tokens_int(cls, value: Any) -> int | None:
        return None if value in (None, "") else as_int(value, "max_output_tokens")

    @field_validator("depends_on", mode="before")
    @classmethod
    def _depends_ints(cls, value: Any) -> list[int] | None:
        if value is None:
            return None
        items = value if isinstance(value, (list, tuple, set)) else [value]
        return [as_int(item, "depends_on entry") for item in items]

    @field_validator("tools", mode="before")
    @classmethod
    def _tools_list(cls, value: Any) -> Any:
        if value is None:
            return None
        return list(value) if isinstance(value, (list, tuple)) else [value]

    @field_validator("instructions", "step_name", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {type(value).__name__}")
        return value

    def image_tool(self) -> ImageToolConfig | None:
        """The first `image_generation` tool (string or object form), as the seed uses it."""
        for tool in self.tools or []:
            if tool == "image_generation":
                return ImageToolConfig()
            if isinstance(tool, dict) and tool.get("type") == "image_generation":
                return ImageToolConfig(**{k: v for k, v in tool.items() if k != "type"})
        return None

    def text_tools(self) -> list[dict[str, Any]]:
        """Tools passed through to a text step: web search only; other seed tools need executors we don't run."""
        kept = []
        for tool in self.tools or []:
            kind = tool if isinstance(tool, str) else tool.get("type")
            if kind in ("web_search", "web_search_preview"):
                kept.append({"type": kind} if isinstance(tool, str) else dict(tool))
        return kept


class Workflow(BaseModel):
    model_config = ConfigDict(extra="allow")

    workflow_id: str
    tenant_id: str | None = None
    workflow_name: str | None = None
    steps: list[WorkflowStep] = Field(default_factory=list)
