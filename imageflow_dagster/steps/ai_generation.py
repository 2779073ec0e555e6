"""AI generation steps (text, or images through the image_generation tool): the planning code in
flow/planning.py behind the step-kind contract."""

from pydantic import ValidationError

from imageflow_dagster.flow import planning
from imageflow_dagster.flow.errors import BadRecordError
from imageflow_dagster.models.pipeline import StepPlan
from imageflow_dagster.models.workflow import WorkflowStep
from imageflow_dagster.steps.base import StepRun

NAME = "ai_generation"
MARKER = None
STEP_TYPES = (None, "", "ai_generation")


def check(step: WorkflowStep, where: str) -> None:
    if step.step_type == "webhook":
        raise BadRecordError(f"{where} ({step.step_name}) has step_type 'webhook' but no webhook_url")
    if step.step_type not in STEP_TYPES:
        raise BadRecordError(
            f"{where} ({step.step_name}) has unsupported step_type {step.step_type!r}; "
            "imageflow runs ai_generation steps (text or image) and webhook steps"
        )
    try:
        step.image_tool()
    except ValidationError as exc:
        error = exc.errors()[0]
        location = ".".join(str(part) for part in error["loc"])
        detail = f"{location}: {error['msg']}" if location else error["msg"]
        raise BadRecordError(f"{where} ({step.step_name}) has an invalid image_generation tool: {detail}") from exc


def run(step_run: StepRun) -> StepPlan:
    r = step_run
    return planning.plan_ai_step(r.job, r.fields, r.index, r.step, r.deps, r.done, r.tools)
