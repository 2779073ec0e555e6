"""Load the records of one job and reject what cannot run, with a message a person can act on.

The rules every step shares are checked here; the rules of each step kind are the kind's own, checked by
steps/kinds.py's check_steps, which whoever loads a job to run it calls next (the sensor and the run's setup).
"""

from pydantic import ValidationError

from imageflow_dagster.flow.errors import BadRecordError, JobNotFound, first_problem
from imageflow_dagster.flow.ordering import resolve_dependencies
from imageflow_dagster.ids import InvalidIdError, validate_id
from imageflow_dagster.models import Form, Job, Submission, Workflow
from imageflow_dagster.models.job_inputs import JobInputs
from imageflow_dagster.resources.dynamodb import DynamoDBResource

MAX_STEPS = 50
MAX_STEP_NAME = 200
MAX_INSTRUCTIONS = 100_000
MAX_SUBMISSION_CHARS = 200_000


def load_job_inputs(db: DynamoDBResource, job_id: str) -> JobInputs:
    job = load_job(db, job_id)
    workflow = parse_workflow(job.workflow_id, db.get_item(db.workflows_table, {"workflow_id": job.workflow_id}))
    submission_key = {"submission_id": job.submission_id}
    submission = parse_submission(job.submission_id, db.get_item(db.submissions_table, submission_key))
    form = _load_form(db, submission.form_id) if submission.form_id else None
    return JobInputs(job, workflow, submission, form, resolve_dependencies(workflow.steps))


def load_job(db: DynamoDBResource, job_id: str) -> Job:
    _valid_id("job_id", job_id)
    raw = db.get_item(db.jobs_table, {"job_id": job_id})
    if raw is None:
        raise JobNotFound(f"Job {job_id} not found in table {db.jobs_table}")
    return parse_job(job_id, raw)


# ---- the rules, on rows as DynamoDBResource returns them (no I/O: unit-tested on their own)
def parse_job(job_id: str, raw: dict) -> Job:
    job = _parse(Job, raw, f"Job {job_id}")
    _valid_id("tenant_id", job.tenant_id)
    _valid_id("workflow_id", job.workflow_id)
    _valid_id("submission_id", job.submission_id)
    return job


def parse_workflow(workflow_id: str, raw: dict | None) -> Workflow:
    if raw is None:
        raise BadRecordError(f"Workflow {workflow_id} not found")
    workflow = _parse(Workflow, raw, f"Workflow {workflow_id}")
    if not workflow.steps:
        raise BadRecordError(f"Workflow {workflow_id} has no steps configured")
    if len(workflow.steps) > MAX_STEPS:
        raise BadRecordError(f"Workflow {workflow_id} has {len(workflow.steps)} steps; at most {MAX_STEPS} are supported")
    for index, step in enumerate(workflow.steps):
        _check_step(workflow_id, index, step)
    return workflow


def parse_submission(submission_id: str, raw: dict | None) -> Submission:
    if raw is None:
        raise BadRecordError(f"Submission {submission_id} not found")
    submission = _parse(Submission, raw, f"Submission {submission_id}")
    if sum(len(str(v)) for v in submission.submission_data.values()) > MAX_SUBMISSION_CHARS:
        raise BadRecordError(f"Submission {submission_id} is larger than {MAX_SUBMISSION_CHARS} characters")
    return submission


def _check_step(workflow_id: str, index: int, step) -> None:
    where = f"Workflow {workflow_id} step {index + 1}"
    if not step.step_name.strip():
        step.step_name = f"Step {index + 1}"  # the seed API's default name
    if len(step.step_name) > MAX_STEP_NAME:
        raise BadRecordError(f"{where} has a name longer than {MAX_STEP_NAME} characters")
    if len(step.instructions) > MAX_INSTRUCTIONS:
        raise BadRecordError(f"{where} ({step.step_name}) has instructions longer than {MAX_INSTRUCTIONS} characters")


def _load_form(db: DynamoDBResource, form_id: str) -> Form | None:
    """The form only labels the submission's fields: without its row (the seed's step tester makes such jobs)
    the fields keep their ids, as in the seed."""
    raw = db.get_item(db.forms_table, {"form_id": form_id})
    return None if raw is None else _parse(Form, raw, f"Form {form_id}")


def _parse(model, raw: dict, what: str):
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise BadRecordError(f"{what} is malformed: {first_problem(exc)}") from exc


def _valid_id(kind: str, value: object) -> None:
    try:
        validate_id(kind, value)
    except InvalidIdError as exc:
        raise BadRecordError(f"Invalid {kind}: {exc}") from exc
