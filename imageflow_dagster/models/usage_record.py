from pydantic import BaseModel


class UsageRecord(BaseModel):
    """A row of the usage-records table; one per step and service, images included."""

    usage_id: str
    tenant_id: str
    job_id: str
    service_type: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    created_at: str
