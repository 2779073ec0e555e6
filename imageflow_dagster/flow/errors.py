"""Errors that end a job, each carrying the message the job's `error_message` will show."""

from pydantic import ValidationError


class JobError(RuntimeError):
    """Ends the job as `failed`; `error_type` names the kind of failure for operators."""

    error_type = "JobError"

    def __init__(self, message: str, error_type: str | None = None):
        super().__init__(message)
        if error_type:
            self.error_type = error_type


class BadRecordError(JobError):
    """The job, its workflow, submission or form is missing or malformed: running it cannot succeed."""

    error_type = "InvalidJobRecord"


class JobNotFound(BadRecordError):
    """No job row has this id: nothing can be run, nor marked failed."""


class StepFailed(JobError):
    """A workflow step failed; the message follows the seed's `Step {n} ({name}) failed: ...`."""

    def __init__(self, number: int, name: str, reason: str, error_type: str = "StepFailed"):
        super().__init__(step_failure_message(number, name, reason), error_type)
        self.number = number
        self.step_name = name


def first_problem(exc: ValidationError) -> str:
    """A record's or a setting's first validation problem, where it is: `steps.0.step_order: Value error, ...`."""
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"])
    return f"{location}: {error['msg']}" if location else error["msg"]


def step_failure_message(number: int, name: str, reason: str) -> str:
    return f"Step {number} ({name}) failed: {reason}"
