"""`WarmRunLauncher`: each run still gets its own process, forked from a warm worker (`warm_worker.py`) that has
imported Dagster's run-worker code and the heavy SDKs once, instead of a fresh Python process spawned by the code
server per run (`DefaultRunLauncher`).

On 2 cores that spawn costs ~1.9 s of CPU for a do-nothing run and ~4 s for an imageflow job, mostly imports
(dagster, dagster-aws, openai, boto3): the throughput limit of a single machine (BENCHMARKS.md, case 3). Only
third-party modules are preloaded; the code location is imported fresh in every run, so code changes apply to
the next run as with the default launcher. For one machine; across machines use a container launcher
(`dagster_aws.ecs.EcsRunLauncher`).

Enable in dagster.yaml:

    run_launcher:
      module: imageflow_dagster.launcher
      class: WarmRunLauncher
      config:
        preload_modules: [dagster_aws.s3, openai, PIL.Image]
"""

import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import Any

from dagster import _check as check
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData, serialize_value

from imageflow_dagster.run_tags import WORKER_TAG
from imageflow_dagster.warm_worker import process_state

# The first answer waits for the preloads (~2 s here); later ones for one fork (~10 ms).
REPLY_TIMEOUT_S = 120


class WarmRunLauncher(RunLauncher, ConfigurableClass):
    def __init__(self, inst_data: ConfigurableClassData | None = None, preload_modules: list[str] | None = None):
        self._inst_data = inst_data
        self._preload_modules = list(preload_modules or [])
        self._worker: subprocess.Popen | None = None
        self._replies = None
        self._lock = threading.Lock()  # the daemon launches from several threads; one request at a time
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {"preload_modules": [str]}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> "WarmRunLauncher":
        return cls(inst_data=inst_data, **config_value)

    # ---- launching
    def launch_run(self, context: LaunchRunContext) -> None:
        run = check.inst(context.dagster_run, DagsterRun)
        request = ExecuteRunArgs(
            job_origin=check.not_none(run.job_code_origin),
            run_id=run.run_id,
            instance_ref=self._instance.get_ref(),
            set_exit_code_on_failure=True,
        )
        worker = self._fork(serialize_value(request))
        self._instance.add_run_tags(run.run_id, {WORKER_TAG: worker})
        self._instance.report_engine_event(f"Forked run worker (pid {worker.split()[0]}) from the warm worker.", run, cls=self.__class__)

    def _fork(self, line: str) -> str:
        with self._lock:
            for _ in range(2):  # a worker that died (e.g. OOM-killed) is replaced once
                if self._worker is None or self._worker.poll() is not None:
                    self._start_worker()
                try:
                    self._worker.stdin.write(line + "\n")
                    self._worker.stdin.flush()
                    reply = self._reply()
                except (BrokenPipeError, OSError):
                    reply = ""
                if reply:
                    return reply
                self._stop_worker()
            raise RuntimeError("the warm run worker did not start the run")

    def _reply(self) -> str:
        """The worker's answer, or "" when it does not answer in time (it then gets replaced)."""
        ready, _, _ = select.select([self._replies], [], [], REPLY_TIMEOUT_S)
        return self._replies.readline().strip() if ready else ""

    def _start_worker(self) -> None:
        read_end, write_end = os.pipe()
        command = [sys.executable, "-m", "imageflow_dagster.warm_worker", f"--reply-fd={write_end}"]
        command += [f"--preload={module}" for module in self._preload_modules]
        self._worker = subprocess.Popen(command, stdin=subprocess.PIPE, text=True, pass_fds=(write_end,))
        os.close(write_end)
        self._replies = os.fdopen(read_end, "r")

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.stdin.close()  # end of input: the worker exits; its runs go on
            try:
                self._worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._worker.kill()
            self._replies.close()
            self._worker = None

    def dispose(self) -> None:
        with self._lock:
            self._stop_worker()

    # ---- run monitoring and termination
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        worker = run.tags.get(WORKER_TAG)
        if not worker:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "no run worker recorded yet")
        if _alive(worker):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=worker)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker (pid {worker.split()[0]}) is gone", run_worker_id=worker)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if not run or run.is_finished or not _alive(run.tags.get(WORKER_TAG, "")):
            return False
        self._instance.report_run_canceling(run)
        # What the code server sends its own run processes: Dagster turns SIGINT into a clean interruption.
        os.kill(int(run.tags[WORKER_TAG].split()[0]), signal.SIGINT)
        return True


def _alive(worker: str) -> bool:
    """The very process recorded for the run is running (same pid, same start time, not a zombie)."""
    try:
        pid, started = worker.split()
        state = process_state(int(pid))
    except ValueError:
        return False
    return state is not None and state[0] != "Z" and state[1] == started
