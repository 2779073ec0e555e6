"""The records of one job as flow/loading.py reads and checks them, with its steps' dependencies resolved: what
a run's setup, its steps and the sensor's check share."""

from dataclasses import dataclass

from imageflow_dagster.models.form import Form
from imageflow_dagster.models.job import Job
from imageflow_dagster.models.submission import Submission
from imageflow_dagster.models.workflow import Workflow


@dataclass(frozen=True)
class JobInputs:
    job: Job
    workflow: Workflow
    submission: Submission
    form: Form | None
    dependencies: dict[int, list[int]]  # step index -> indices of the steps it depends on
