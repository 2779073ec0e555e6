"""Which kind a workflow step is, by the seed's rule: a truthy `webhook_url` makes a webhook step, a truthy
`handoff_workflow_id` a handoff step, both is an error, anything else is AI generation (text or image)."""

from imageflow_dagster.flow.errors import BadRecordError
from imageflow_dagster.models.job_inputs import JobInputs
from imageflow_dagster.models.workflow import WorkflowStep
from imageflow_dagster.steps import ai_generation, handoff, webhook
from imageflow_dagster.steps.base import StepKind, marker_value

MARKED_KINDS: tuple[StepKind, ...] = (webhook, handoff)
FALLBACK_KIND: StepKind = ai_generation


def kind_of(step: WorkflowStep, where: str) -> StepKind:
    """`where` names the step in the error ("Workflow wf_1 step 2")."""
    marked = [kind for kind in MARKED_KINDS if marker_value(step, kind.MARKER)]
    if len(marked) > 1:
        fields = " and ".join(kind.MARKER for kind in marked)
        raise BadRecordError(
            f"{where} ({step.step_name}) has both {fields}; a step is either a webhook or a handoff, not both"
        )
    return marked[0] if marked else FALLBACK_KIND


def check_steps(inputs: JobInputs) -> None:
    """Each step checked by its kind, raising BadRecordError before anything runs. flow/loading.py checks what
    every step shares and cannot know the kinds (they sit above it), so whoever loads a job to run it calls this
    next: the jobs sensor, before it claims, and the run's setup."""
    for index, step in enumerate(inputs.workflow.steps):
        where = f"Workflow {inputs.job.workflow_id} step {index + 1}"
        kind_of(step, where).check(step, where)
