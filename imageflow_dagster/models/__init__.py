"""Pydantic models, one per record kind the pipeline reads or writes."""

from imageflow_dagster.models.artifact import Artifact
from imageflow_dagster.models.execution_step import ExecutionStep
from imageflow_dagster.models.form import Form, FormField
from imageflow_dagster.models.job import Job
from imageflow_dagster.models.notification import Notification
from imageflow_dagster.models.submission import Submission
from imageflow_dagster.models.usage_record import UsageRecord
from imageflow_dagster.models.user_settings import PromptOverride, UserSettings
from imageflow_dagster.models.workflow import ImageToolConfig, Workflow, WorkflowStep

__all__ = [
    "Artifact",
    "ExecutionStep",
    "Form",
    "FormField",
    "ImageToolConfig",
    "Job",
    "Notification",
    "PromptOverride",
    "Submission",
    "UsageRecord",
    "UserSettings",
    "Workflow",
    "WorkflowStep",
]
