"""The job's `live_step`, as the seed's UI shows it while a job runs."""

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
        self._state_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def say(self, step_number: int, line: str, status: str) -> None:
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
            }
        with self._write_lock:
            if version < self._said:
                return  # a newer line is waiting to be written, with this one in its history
            try:
                update_job(self._db, self._job_id, {"live_step": live_step})
            except Exception as exc:  # progress must never fail the job
                self._log.warning(f"could not update live_step of {self._job_id}: {exc}")
