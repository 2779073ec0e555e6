from typing import Literal

from pydantic import BaseModel


class Notification(BaseModel):
    """A row of the notifications table, as the seed's worker writes it when a job completes
    (backend/worker/db_service.py `create_notification`); the seed's `GET /admin/notifications` lists it and the
    UI's bell shows its title."""

    notification_id: str  # notif_{tenant_id}_job_completed_job_{job_id}: one per job, however often it completes
    tenant_id: str
    type: Literal["job_completed"]
    title: str
    message: str
    read: bool = False
    created_at: str  # ISO-8601 UTC with milliseconds and `Z`
    ttl: int  # epoch seconds, 90 days after creation (the table's TTL attribute)
    related_resource_id: str
    related_resource_type: Literal["job"]
