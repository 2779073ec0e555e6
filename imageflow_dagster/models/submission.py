from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Submission(BaseModel):
    model_config = ConfigDict(extra="allow")

    submission_id: str
    tenant_id: str | None = None
    form_id: str | None = None
    submission_data: dict[str, Any] = Field(default_factory=dict)
    submitter_email: str | None = None
