from typing import Literal

from pydantic import BaseModel


class Artifact(BaseModel):
    """A row of the artifacts table, in the fields the seed's UI reads."""

    artifact_id: str
    tenant_id: str
    job_id: str
    artifact_type: Literal["image", "step_output", "markdown_final", "html_final", "json_final"]
    artifact_name: str
    s3_key: str
    s3_url: str
    public_url: str
    is_public: bool
    file_size_bytes: int
    mime_type: str
    created_at: str
