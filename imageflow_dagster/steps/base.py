"""The contract of a step kind.

A kind is a module with:
- `NAME`: the `step_type` its execution-step entry carries;
- `MARKER`: the step field whose truthy value makes a step this kind (None for the fallback, AI generation);
- `check(step, where)`: load-time validation, raising BadRecordError before anything runs;
- `run(step_run) -> StepPlan`: runs the step in the planning phase; a kind that knows its whole execution-step
  entry once it has run sets `StepPlan.entry` (AI steps leave it None: their entry waits for their images).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from imageflow_dagster.flow.errors import BadRecordError
from imageflow_dagster.ids import utc_now_iso
from imageflow_dagster.models.pipeline import JobIdentity, StepPlan
from imageflow_dagster.models.workflow import WorkflowStep

if TYPE_CHECKING:  # both import the step kinds
    from imageflow_dagster.flow.loading import JobInputs
    from imageflow_dagster.flow.planning import PlanningTools


class StepKind(Protocol):
    NAME: str
    MARKER: str | None

    def check(self, step: WorkflowStep, where: str) -> None: ...

    def run(self, step_run: "StepRun") -> StepPlan: ...


@dataclass(frozen=True)
class StepRun:
    """One step to run, with what the job and its finished dependencies offer it."""

    inputs: "JobInputs"
    job: JobIdentity
    fields: dict[str, Any]  # the labelled form submission
    index: int
    done: dict[int, StepPlan]  # finished steps by index; every dependency of this step is there
    tools: "PlanningTools"

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
            model="",
            depends_on=self.deps,
            started_at=utc_now_iso(),
        )


def marker_value(step: WorkflowStep, field: str) -> Any:
    return (step.model_extra or {}).get(field)


def invalid_settings(step: WorkflowStep, where: str, kind: str, exc: ValidationError) -> BadRecordError:
    """The load-time error of a step whose `kind` settings do not parse: the first problem, where it is."""
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"])
    return BadRecordError(f"{where} ({step.step_name}) has invalid {kind} settings: {location}: {error['msg']}")
