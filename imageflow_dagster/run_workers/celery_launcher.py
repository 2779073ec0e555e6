"""dagster-celery's `CeleryRunLauncher`, plus one thing it cannot see: a worker that is gone.

Celery records a task `STARTED` when a worker takes it and never changes that if the whole worker (its machine,
its container, its process group) dies: nobody is left to write `FAILURE`. Dagster's run monitoring would then
wait forever on a run that nobody executes. Here a `STARTED` run's worker is asked whether it is alive (Celery's
`ping` broadcast, answered by the worker's main process, which never runs a job itself); a worker that misses
`MISSES_BEFORE_LOST` checks in a row is lost, the run is reported failed, and Dagster's run retries start it
again on another worker under the job's same claim. A dead *child* is already handled by Celery itself: its
parent records `WorkerLostError` as the task's failure.

A cancel (the UI's Terminate) marks the run `CANCELING` before the task is revoked, as Dagster's own launchers do:
the run's process then ends `CANCELED` on the signal, and the job fails as canceled. dagster-celery only revokes,
so the interrupted run ended `FAILURE`, as if its code had failed.
"""

import threading
import time

from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG

PING_TIMEOUT_S = 5.0  # a loaded machine answers late; the ping waits this long for every reply
MISSES_BEFORE_LOST = 3  # a missed ping can be a busy machine; three checks a poll interval apart cannot
LIVE_WORKERS_TTL_S = 5.0  # one broadcast answers the health checks of every run in a monitoring pass


class ImageflowCeleryRunLauncher(CeleryRunLauncher):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._live: tuple[float, frozenset[str]] = (0.0, frozenset())
        self._misses: dict[str, int] = {}

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        return super().terminate(run_id)

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        result = super().check_run_worker_health(run)
        if result.status != WorkerStatus.RUNNING:
            self._misses.pop(run.run_id, None)  # ended (or not started): its count of misses means nothing now
            return result
        task = self.celery.AsyncResult(run.tags[DAGSTER_CELERY_TASK_ID_TAG])
        worker = (task.info or {}).get("hostname") if isinstance(task.info, dict) else None
        if not worker:
            return result
        if worker in self._live_workers():
            self._misses.pop(run.run_id, None)
            return result
        misses = self._misses.get(run.run_id, 0) + 1
        self._misses[run.run_id] = misses
        if misses < MISSES_BEFORE_LOST:
            return result
        self._misses.pop(run.run_id, None)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"Celery worker {worker} that started this run answers no ping ({misses} checks): it is gone",
        )

    def _live_workers(self) -> frozenset[str]:
        with self._lock:
            checked_at, live = self._live
            if time.monotonic() - checked_at > LIVE_WORKERS_TTL_S:
                replies = self.celery.control.ping(timeout=PING_TIMEOUT_S)
                live = frozenset(name for reply in replies for name in reply)
                self._live = (time.monotonic(), live)
            return live
