"""The job's `live_step`, as the seed's UI shows it while a job runs.

Statuses are the seed's: `planning`, `generating`, `streaming`, then `final` while the run records the job, or
`error` (with the failure in `error`) when a step fails. The job's final status write removes `live_step`.
"""

import logging
import threading

from imageflow_dagster.flow.job_store import update_job
from imageflow_dagster.ids import utc_now_iso
from imageflow_dagster.resources.dynamodb import DynamoDBResource


class LiveProgress:
    """Keeps one history per step and writes the latest step's history to the job row.

    Images report from many threads at once; each write carries the whole history, so a line that a newer one
    already supersedes is not written on its own (latest wins): a burst of N lines costs about two writes, not N
    queued round trips. Progress is informative only: a failed write is logged and never fails the job.
    """

    def __init__(self, db: DynamoDBResource, job_id: str, log: logging.Logger):
        self._db = db
        self._job_id = job_id
        self._log = log
        self._history: dict[int, list[str]] = {}
        self._said = 0
        self._failed = False
        self._state_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def say(self, step_number: int, line: str, status: str, error: str | None = None) -> None:
        with self._state_lock:
            lines = self._history.setdefault(step_number, [])
            lines.append(line)
            self._said += 1
            version = self._said
            live_step = {
                "step_order": step_number,
                "output_text": "\n".join(lines),
                "status": status,
                "updated_at": utc_now_iso(),
                "truncated": False,  # the whole history is written; the seed's UI reads the flag
            }
            if error is not None:
                live_step["error"] = error
        with self._write_lock:
            if version < self._said:
                return  # a newer line is waiting to be written, with this one in its history
            try:
                update_job(self._db, self._job_id, {"live_step": live_step})
            except Exception as exc:  # progress must never fail the job
                self._log.warning(f"could not update live_step of {self._job_id}: {exc}")

    def failed(self, step_number: int, error: str) -> None:
        """A failed step, as the seed shows it: status `error`, the failure text in `error`."""
        self._failed = True
        self.say(step_number, f"Failed: {error}", "error", error=error)

    def recording(self, step_number: int) -> None:
        """The run is writing the step outputs, artifact rows and final document: the seed's `final`. Not after
        a failure: the job is failing, and its `error` stays what the page shows until the status says so."""
        if not self._failed:
            self.say(step_number, "Recording results...", "final")
