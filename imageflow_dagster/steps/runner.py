"""The steps phase of a job: every step run by its kind, in dependency order, independent steps in parallel. Text
steps answer, image steps plan their images, webhook steps send, handoff steps start their jobs; the images of
every image step are rendered afterwards, together (flow/generation.py).

Each finished step is written to `execution_steps.json` at once (flow/live_records.py). Webhook and handoff
steps get the outputs of the steps they depend on like text steps do (an image step's output holds its planned
image URLs), and the steps that depend on them wait for them.
"""

from imageflow_dagster.flow.context import labeled_submission
from imageflow_dagster.flow.deliverable import deliverable_indices
from imageflow_dagster.flow.live_records import LiveExecutionSteps
from imageflow_dagster.flow.ordering import waves
from imageflow_dagster.flow.parallel import parallel_map
from imageflow_dagster.ids import utc_now_iso
from imageflow_dagster.models.job_inputs import JobInputs
from imageflow_dagster.models.pipeline import JobIdentity, JobPlan, StepPlan
from imageflow_dagster.steps.base import StepRun, StepTools
from imageflow_dagster.steps.kinds import kind_of


def job_identity(inputs: JobInputs) -> JobIdentity:
    return JobIdentity(
        job_id=inputs.job.job_id,
        tenant_id=inputs.job.tenant_id,
        workflow_id=inputs.job.workflow_id,
        submission_id=inputs.job.submission_id,
        workflow_name=inputs.workflow.workflow_name,
    )


def run_steps(inputs: JobInputs, tools: StepTools) -> JobPlan:
    started_at = utc_now_iso()
    identity = job_identity(inputs)
    fields = labeled_submission(inputs.submission, inputs.form)
    plans: dict[int, StepPlan] = {}
    steps = inputs.workflow.steps
    order = waves(inputs.dependencies, steps)

    live = LiveExecutionSteps(tools.s3, tools.db, identity, fields, started_at, tools.log)

    def run_step(index: int) -> StepPlan:
        kind = kind_of(steps[index], f"Workflow {identity.workflow_id} step {index + 1}")
        plan = kind.run(StepRun(inputs, identity, fields, index, plans, tools))
        if plan.status == "failed":  # a skipped step only follows a failure already shown
            tools.progress.failed(plan.number, plan.error or "step failed")
        live.step_finished(plan)
        return plan

    for wave in order:
        for plan in parallel_map(run_step, wave, workers=len(wave), name="imageflow-step"):
            plans[plan.index] = plan
    ordered = [plans[i] for wave in order for i in wave]
    return JobPlan(
        job=identity,
        submission_fields=fields,
        steps=ordered,
        started_at=started_at,
        deliverables=deliverable_indices(steps),
    )
