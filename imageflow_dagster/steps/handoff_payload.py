"""What a handoff step sends to the job it starts: its settings as the seed's step editor stores them, and the
seed's outgoing submission_data (source answers, the primary value, context, deliverables, `_handoff`)."""

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from imageflow_dagster.flow.context import step_context
from imageflow_dagster.flow.ordering import execution_order
from imageflow_dagster.ids import utc_now_iso
from imageflow_dagster.steps.base import StepRun, context_block, planned_output
from imageflow_dagster.steps.webhook import webhook_data

PAYLOAD_MODES = ("previous_step_output", "full_context", "submission_only", "deliverable_output")


class HandoffConfig(BaseModel):
    """The `handoff_*` fields of a workflow step, with the seed worker's defaults."""

    model_config = ConfigDict(extra="ignore")

    handoff_workflow_id: str
    handoff_payload_mode: str = "previous_step_output"
    handoff_input_field: str = "input"
    handoff_include_submission_data: bool = True
    handoff_include_context: bool = False
    handoff_bypass_required_inputs: bool = True

    @field_validator("handoff_payload_mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> str:
        mode = str(value or "previous_step_output").strip()
        if mode not in PAYLOAD_MODES:
            raise ValueError(f"handoff_payload_mode must be one of {', '.join(PAYLOAD_MODES)}, got {value!r}")
        return mode

    @field_validator("handoff_input_field", mode="before")
    @classmethod
    def _field(cls, value: Any) -> str:
        return str(value).strip() if value not in (None, "") else "input"


def handoff_config(fields: dict[str, Any]) -> HandoffConfig:
    """The step's handoff settings; a field stored as null means "not set" (the default applies)."""
    return HandoffConfig.model_validate({name: value for name, value in fields.items() if value is not None})


def submission_data(step_run: StepRun, config: HandoffConfig) -> dict[str, Any]:
    """The target job's submission_data, keys in the seed's order."""
    data: dict[str, Any] = {}
    if config.handoff_include_submission_data:
        data.update(step_run.inputs.submission.submission_data)
    context = handoff_context(step_run)
    data[config.handoff_input_field] = primary_value(step_run, config, context)
    if config.handoff_include_context and config.handoff_payload_mode != "full_context":
        data["context"] = context
    deliverables = webhook_data(step_run).deliverables
    if deliverables:
        data["deliverable_context"] = "\n\n".join(o.output for o in deliverables)
        data["deliverable_steps"] = {f"step_{o.step_index}": o.as_dict() for o in deliverables}
    data["_handoff"] = {
        "source_job_id": step_run.job.job_id,
        "source_workflow_id": step_run.job.workflow_id,
        "source_step_index": step_run.index,
        "source_step_name": step_run.step.step_name,
        "bypass_required_inputs": config.handoff_bypass_required_inputs,
        "timestamp": utc_now_iso(),
    }
    return data


def primary_value(step_run: StepRun, config: HandoffConfig, context: str) -> str:
    mode = config.handoff_payload_mode
    if mode == "submission_only":
        return ""
    if mode == "full_context":
        return context
    outputs = [planned_output(step_run.done[d]) for d in _in_run_order(step_run)]
    if mode == "deliverable_output":
        deliverables = webhook_data(step_run).deliverables
        if deliverables:
            return "\n\n".join(o.output for o in deliverables)
    return outputs[-1] if outputs else ""  # the output of the last step before this one


def handoff_context(step_run: StepRun) -> str:
    """The context an AI step in this position would get: the labelled submission and the dependencies' outputs."""
    blocks = [context_block(step_run.done[index]) for index in _in_run_order(step_run)]
    return step_context(step_run.fields, blocks)


def _in_run_order(step_run: StepRun) -> list[int]:
    """The step's dependencies in the order the workflow runs them (the seed's "previous step" is the last)."""
    position = {index: rank for rank, index in enumerate(execution_order(step_run.inputs.workflow.steps))}
    return sorted(step_run.deps, key=lambda index: position[index])
