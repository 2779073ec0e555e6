"""The contract of a step kind.

A kind is a module with:
- `NAME`: the `step_type` its execution-step entry carries;
- `MARKER`: the step field whose truthy value makes a step this kind (None for the fallback, AI generation);
- `check(step, where)`: load-time validation, raising BadRecordError before anything runs;
- `run(step_run) -> StepPlan`: runs the step (an image step plans its images, rendered once every step has
  run); a kind that knows its whole execution-step entry once it has run sets `StepPlan.entry` (AI steps
  leave it None: their entry waits for their images).

A kind's `run` gets a StepRun: the step, the job's inputs, its finished dependencies and the run's StepTools.
"""

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from imageflow_dagster.flow.context import dependency_block, image_step_output
from imageflow_dagster.flow.errors import BadRecordError, first_problem
from imageflow_dagster.flow.progress import LiveProgress
from imageflow_dagster.flow.response_cache import ResponseCache
from imageflow_dagster.ids import utc_now_iso
from imageflow_dagster.models import PromptOverride
from imageflow_dagster.models.job_inputs import JobInputs
from imageflow_dagster.models.pipeline import JobIdentity, StepPlan
from imageflow_dagster.models.workflow import WorkflowStep
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.openai_client import OpenAIResource
from imageflow_dagster.resources.s3 import ImageflowS3Resource
from imageflow_dagster.steps.webhook_http import WebhookPolicy


class StepKind(Protocol):
    NAME: str
    MARKER: str | None

    def check(self, step: WorkflowStep, where: str) -> None: ...

    def run(self, step_run: "StepRun") -> StepPlan: ...


@dataclass
class StepTools:
    """What the run gives every step, whatever its kind (assets/run_setup.py builds it once per run)."""

    openai: OpenAIResource
    s3: ImageflowS3Resource
    cache: ResponseCache
    progress: LiveProgress
    log: logging.Logger
    # Steps to ask again (a step rerun and its dependents): no replayed answers, fresh image keys under `variant`.
    fresh_steps: frozenset[int] = frozenset()
    variant: str = ""
    webhooks: WebhookPolicy = field(default_factory=WebhookPolicy)
    max_handoff_depth: int = 5  # IMAGEFLOW_MAX_HANDOFF_DEPTH: handoffs in a row that may lead to one job
    db: DynamoDBResource | None = None  # handoff steps read the target workflow and write its job
    planner_override: PromptOverride | None = None  # the tenant's, from the seed's user settings

    def image_variant(self, plan: StepPlan) -> str:
        return self.variant if plan.index in self.fresh_steps else ""


@dataclass(frozen=True)
class StepRun:
    """One step to run, with what the job and its finished dependencies offer it."""

    inputs: JobInputs
    job: JobIdentity
    fields: dict[str, Any]  # the labelled form submission
    index: int
    done: dict[int, StepPlan]  # finished steps by index; every dependency of this step is there
    tools: StepTools

    @property
    def step(self) -> WorkflowStep:
        return self.inputs.workflow.steps[self.index]

    @property
    def deps(self) -> list[int]:
        return self.inputs.dependencies[self.index]

    def new_plan(self, kind: str) -> StepPlan:
        """The plan of a step that calls no model (webhook, handoff), before it runs."""
        return StepPlan(
            index=self.index,
            number=self.index + 1,
            name=self.step.step_name,
            kind=kind,
            depends_on=self.deps,
            started_at=utc_now_iso(),
        )


def marker_value(step: WorkflowStep, field: str) -> Any:
    return (step.model_extra or {}).get(field)


def invalid_settings(step: WorkflowStep, where: str, kind: str, exc: ValidationError) -> BadRecordError:
    """The load-time error of a step whose `kind` settings do not parse: the first problem, where it is."""
    return BadRecordError(f"{where} ({step.step_name}) has invalid {kind} settings: {first_problem(exc)}")


def blocked_by(deps: list[int], done: dict[int, StepPlan]) -> StepPlan | None:
    """The first dependency that did not succeed: a step whose input is missing is not run."""
    return next((done[d] for d in deps if done[d].status != "ok"), None)


def not_run(plan: StepPlan, failed: StepPlan) -> StepPlan:
    plan.status = "skipped"
    plan.error = f"not run because step {failed.number} ({failed.name}) did not succeed"
    plan.error_type = "DependencyFailed"
    return plan


def planned_output(dep: StepPlan) -> str:
    """What a finished step hands to the steps that depend on it: its text, or for an image step the seed's image
    JSON with the planned URLs (known before the images are rendered)."""
    if dep.kind != "image":
        return dep.output_text or ""
    requests = dep.image_requests
    images = [{"label": request.label, "prompt": request.prompt, "url": request.url} for request in requests]
    return image_step_output(dep.image.model or "", dep.image.config or {}, images)


def context_block(dep: StepPlan) -> str:
    """A finished step's part of the context of a step that depends on it: its output and its image URLs."""
    urls = [request.url for request in dep.image_requests]
    return dependency_block(dep.number, dep.name, planned_output(dep), urls)
