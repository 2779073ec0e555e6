"""A run keeps its claim on its job alive for as long as it works.

The lease (IMAGEFLOW_CLAIM_LEASE_S) says when a claim may be taken over; a render waiting on the OpenAI rate
limit can outlast any lease, and a run that lost its claim renders and pays for nothing (its outcome is
refused). So the run renews the lease every third of it, from a thread that lives exactly as long as the run's
work: with two renewals of slack, one slow or failed write does not lose the job. A run that dies stops
renewing, and its lease runs out as before.
"""

import logging
import threading

from imageflow_dagster.flow.job_store import CLAIM_ID, renew_lease
from imageflow_dagster.resources.dynamodb import DynamoDBResource


class ClaimHeartbeat:
    """Renews `claim_id`'s lease on the job until the `with` block ends (returns, fails or raises), or until
    the claim is no longer this run's."""

    def __init__(self, db: DynamoDBResource, job_id: str, claim_id: str, log: logging.Logger):
        self._db = db
        self._job_id = job_id
        self._claim_id = claim_id
        self._log = log
        self._interval_s = db.claim_lease_s / 3
        self._stopped = threading.Event()
        # A daemon thread: should the block's exit never run (the process is torn down), it keeps nothing alive.
        self._thread = threading.Thread(target=self._beat, name=f"claim-heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> "ClaimHeartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopped.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stopped.wait(self._interval_s):
            if not self._renewed():
                return

    def _renewed(self) -> bool:
        """False once there is nothing left to renew: the claim was released or another claimer holds it."""
        try:
            if renew_lease(self._db, self._job_id, self._claim_id, self._db.claim_lease_s):
                return True
            self._report_lost()
            return False
        except Exception as exc:  # DynamoDB unreachable for a moment: the next beat, within the lease, retries
            self._log.warning(f"could not renew claim {self._claim_id} on job {self._job_id}: {exc}")
            return True

    def _report_lost(self) -> None:
        if self._stopped.is_set():
            return  # the run ended, and its final write released the claim, while this renewal was on its way
        row = self._db.get_item(self._db.jobs_table, {"job_id": self._job_id}) or {}
        holder = row.get(CLAIM_ID)
        if holder is None:  # the job was ended for this run (its final write, or the run-failure sensor)
            status = row.get("status")
            self._log.info(f"claim {self._claim_id} on job {self._job_id} was released (status {status})")
            return
        self._log.error(
            f"job {self._job_id} was taken over by claim {holder} while this run (claim {self._claim_id}) "
            "worked on it: its lease ran out unrenewed. This run's results will not be written to the job."
        )
