from pydantic import BaseModel, ConfigDict


class Job(BaseModel):
    """A row of the jobs table as the seed's API writes it; unknown fields are kept untouched."""

    model_config = ConfigDict(extra="allow")

    job_id: str
    tenant_id: str
    workflow_id: str
    submission_id: str
    status: str
    created_at: str | None = None
    updated_at: str | None = None
    execution_steps_s3_key: str | None = None
    error_message: str | None = None
