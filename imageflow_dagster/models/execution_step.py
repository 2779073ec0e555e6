from typing import Any

from pydantic import BaseModel, ConfigDict


class ExecutionStep(BaseModel):
    """One entry of `execution_steps.json`, in the shape the seed's UI reads."""

    model_config = ConfigDict(extra="allow")

    step_name: str
    step_order: int
    step_type: str
    success: bool | None = None
    model: str | None = None
    input: Any = None
    output: Any = None
    image_urls: list[str] | None = None
    usage_info: dict[str, Any] | None = None
    timestamp: str
    duration_ms: int = 0
    artifact_id: str | None = None
