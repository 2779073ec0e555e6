"""What Dagster's run storage says about the claims on one batch of jobs: which have a run, and which run is
still queued or running. One query per batch (runs tagged with any of the batch's claims), not one per job."""

import time
from dataclasses import dataclass, field

import dagster as dg

from imageflow_dagster.flow.job_store import CLAIM_ID
from imageflow_dagster.run_tags import CLAIM_TAG

# Statuses of a run that may still start or still works on its job (or is being stopped): such a run holds its
# claim and its tenant's share (admission.py).
ALIVE_STATUSES = (
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)
WILL_RETRY_TAG = "dagster/will_retry"


@dataclass
class ClaimRuns:
    launched: set[str] = field(default_factory=set)  # claims some run was launched for, in any status
    alive: set[str] = field(default_factory=set)  # claims whose run is queued, running or about to be retried

    def read(self, instance: dg.DagsterInstance, jobs: list[dict], retry_grace_s: float) -> None:
        """Adds what run storage holds for the claims on `jobs`."""
        claims = sorted({job[CLAIM_ID] for job in jobs if job.get(CLAIM_ID)})
        if not claims:
            return
        now = time.time()
        for record in instance.get_run_records(filters=dg.RunsFilter(tags={CLAIM_TAG: claims})):
            claim = record.dagster_run.tags[CLAIM_TAG]
            self.launched.add(claim)
            if _holds_its_claim(record, now, retry_grace_s):
                self.alive.add(claim)


def _holds_its_claim(record: dg.RunRecord, now: float, retry_grace_s: float) -> bool:
    """A failed run Dagster will retry (run_retries) hands its claim to the retry, which the daemon creates
    moments later: for that gap it still counts as alive, and no longer, so a retry that never comes frees the
    job."""
    run = record.dagster_run
    if run.status in ALIVE_STATUSES:
        return True
    will_retry = run.status == dg.DagsterRunStatus.FAILURE and run.tags.get(WILL_RETRY_TAG) == "true"
    return will_retry and record.end_time is not None and now - record.end_time < retry_grace_s
