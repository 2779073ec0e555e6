"""`execution_steps.json` while the job runs: rewritten by the run each time a step finishes, so the
seed's job page (which re-reads the file every few seconds) shows finished steps before the images are done.

The run stays the file's only writer; its final put (assets/execution_steps.py) replaces what this wrote. An image
step is listed only then: until its images exist its entry would claim an outcome it does not have yet. Writes
are serialised and each holds every step finished so far, so a slower put never hides a newer step; like
`live_step`, a failed write is logged and never fails the job.
"""

import json
import logging
import threading

from imageflow_dagster.flow.job_store import update_job
from imageflow_dagster.flow.records import EXECUTION_STEPS_FILE, execution_steps
from imageflow_dagster.models.pipeline import JobIdentity, JobPlan, StepPlan
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.s3 import ImageflowS3Resource


class LiveExecutionSteps:
    def __init__(
        self,
        s3: ImageflowS3Resource,
        db: DynamoDBResource | None,
        job: JobIdentity,
        fields: dict,
        started_at: str,
        log: logging.Logger,
    ):
        self._s3 = s3
        self._db = db
        self._key_on_row = False
        self._partial = JobPlan(job=job, submission_fields=fields, steps=[], started_at=started_at)
        self._key = f"{job.prefix}/{EXECUTION_STEPS_FILE}"
        self._log = log
        self._lock = threading.Lock()

    def step_finished(self, step: StepPlan) -> None:
        """One PUT per finished step; nothing for an image step whose images are still to come."""
        if step.kind == "image" and step.status == "ok":
            return
        with self._lock:
            self._partial.steps.append(step)
            records = execution_steps(self._partial, [], {}, {})
            try:
                self._s3.put(self._key, json.dumps(records, indent=2, default=str).encode(), "application/json")
                self._name_file_on_job()
            except Exception as exc:  # progress must never fail the job
                self._log.warning(f"could not write progress of {self._partial.job.job_id} to {self._key}: {exc}")

    def _name_file_on_job(self) -> None:
        """The seed's UI finds the file through the job row's `execution_steps_s3_key`: set once, on a first
        write that landed."""
        if self._key_on_row or self._db is None:
            return
        update_job(self._db, self._partial.job.job_id, {"execution_steps_s3_key": self._key})
        self._key_on_row = True
