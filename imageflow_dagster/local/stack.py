"""The embedded local stack: a moto server process and the local OpenAI server process, tables and bucket, and
a Dagster home. Data lives under `IMAGEFLOW_HOME` (default `./.imageflow`) and persists across restarts; ports
are remembered there too, so image URLs stored in earlier sessions keep loading."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg

from imageflow_dagster.bootstrap import bootstrap
from imageflow_dagster.local.services import free_port
from imageflow_dagster.settings import Settings

DEFAULT_PORTS = {"moto": 4566, "openai": 8765, "ui": 3000}
DAGSTER_YAML = """\
# Written by imageflow's local stack. Runs wait in Dagster's queue; pool `openai_images` bounds image work.
concurrency:
  runs:
    max_concurrent_runs: {max_runs}
  pools:
    default_limit: {pool_limit}
run_queue:
  dequeue_interval_seconds: 1
  dequeue_use_threads: true
  dequeue_num_workers: 4
run_monitoring:
  enabled: true
  start_timeout_seconds: 120
  poll_interval_seconds: 10
# A run whose worker died (not one whose asset code failed) is retried once, under the same claim.
run_retries:
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false
sensors:
  use_threads: true
  num_workers: 4
  num_submit_workers: 4
telemetry:
  enabled: false
{run_launcher}"""
# The embedded default is Dagster's own launcher (no `run_launcher` key): each run in a process the code server
# starts, no broker or worker to run. "celery" runs them as Celery tasks on `imageflow worker` processes
# (deploy/dagster.yaml's launcher): whoever asks for it also starts the broker and the workers.
CELERY_RUN_LAUNCHER = """\
run_launcher:
  module: imageflow_dagster.run_workers.celery_launcher
  class: ImageflowCeleryRunLauncher
  config:
    broker: {env: IMAGEFLOW_CELERY_BROKER_URL}
    backend: {env: IMAGEFLOW_CELERY_BACKEND_URL}
"""
RUN_LAUNCHERS = {"default": "", "celery": CELERY_RUN_LAUNCHER}


class LocalStack:
    def __init__(
        self,
        home: str | os.PathLike | None = None,
        *,
        fixed_ports: bool = True,
        image_latency_s: float = 0.0,
        response_latency_s: float = 0.0,
        image_payload: str = "small",
        images_per_minute: float = 0.0,
        shut_down_models: tuple[str, ...] = (),
        quota_exhausted: bool = False,
        max_concurrent_runs: int = 4,
        pool_limit: int = 4,
        persist: bool = True,
        launcher: str = "default",
        env: dict[str, str] | None = None,
        seed_tables: bool = False,
    ):
        self.home = Path(home or os.getenv("IMAGEFLOW_HOME") or ".imageflow").resolve()
        self._fixed_ports = fixed_ports
        self._openai_args = [
            f"--image-latency={image_latency_s}",
            f"--response-latency={response_latency_s}",
            f"--image-payload={image_payload}",
            f"--images-per-minute={images_per_minute}",
            f"--shut-down-models={','.join(shut_down_models)}",
            *(["--quota-exhausted"] if quota_exhausted else []),
        ]
        self._dagster_yaml = DAGSTER_YAML.format(
            max_runs=max_concurrent_runs,
            pool_limit=pool_limit,
            run_launcher=RUN_LAUNCHERS[launcher],
        )
        self._persist = persist
        self._extra_env = dict(env or {})  # e.g. the Celery launcher's broker and backend
        self._seed_tables = seed_tables  # every table of the seed's, for its own API beside the flow
        self._children: list[subprocess.Popen] = []
        self.ports: dict[str, int] = {}
        self.env: dict[str, str] = {}

    # ---- lifecycle
    def start(self) -> "LocalStack":
        self.home.mkdir(parents=True, exist_ok=True)
        self.ports = self._choose_ports()
        state = str(self.home / "moto-state.pickle") if self._persist else ""
        try:
            self._spawn("moto", [sys.executable, "-m", "imageflow_dagster.local.moto_process", f"--port={self.ports['moto']}", f"--state-file={state}"])
            self._spawn("openai", [sys.executable, "-m", "imageflow_dagster.local.openai_server", f"--port={self.ports['openai']}", *self._openai_args])
            self.env = self._environment()
            self._write_dagster_home()
            with _patched_environ(self.env):
                # public images: image URLs point at moto itself
                bootstrap(Settings.from_env(), public_images=True, seed_tables=self._seed_tables)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_processes(self._children)
        self._children.clear()

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def spawn(self, command: list[str], env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
        """Start a child (e.g. `dg dev`) with the stack's environment and `env`; stopped with the stack."""
        environment = {**os.environ, **self.env, **(env or {})}
        process = subprocess.Popen(command, env=environment, start_new_session=True, **kwargs)
        self._children.append(process)
        return process

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._children]

    # ---- internals
    def _choose_ports(self) -> dict[str, int]:
        saved_file = self.home / "ports.json"
        saved = json.loads(saved_file.read_text()) if saved_file.exists() else {}
        wanted = {**DEFAULT_PORTS, **saved} if self._fixed_ports else {name: 0 for name in DEFAULT_PORTS}
        ports = {name: port if port and _free(port) else free_port() for name, port in wanted.items()}
        if self._fixed_ports:
            saved_file.write_text(json.dumps(ports))
        return ports

    def _spawn(self, name: str, command: list[str]) -> None:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
        self._children.append(process)
        first_line = process.stdout.readline().strip()  # each service prints one line once it serves
        if not first_line:
            raise RuntimeError(f"local {name} server did not start (exit code {process.poll()})")

    def _environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.ports['moto']}",
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{self.ports['openai']}/v1",
            "DAGSTER_HOME": str(self.home / "dagster"),
            "IMAGEFLOW_SENSOR_INTERVAL_S": os.getenv("IMAGEFLOW_SENSOR_INTERVAL_S", "5"),
            **self._extra_env,
        }

    def _write_dagster_home(self) -> None:
        dagster_home = self.home / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        (dagster_home / "dagster.yaml").write_text(self._dagster_yaml)
        # Create and stamp the SQLite storage here, once: the daemon, a worker and a test opening a fresh home at
        # the same moment each stamp its schema version, and two stamps leave a home no process can open again.
        with dg.DagsterInstance.from_config(str(dagster_home)):
            pass


def stop_processes(processes: list[subprocess.Popen], timeout_s: float = 15.0) -> None:
    """SIGTERM each process group (children included), then SIGKILL what is still alive."""
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=5)
        finally:
            _signal_group(process, signal.SIGKILL)  # grandchildren that outlived their parent


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def wait_for_http(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return True
        except OSError:
            time.sleep(0.5)
    return False


class _patched_environ:
    def __init__(self, values: dict[str, str]):
        self._values, self._saved = values, {}

    def __enter__(self):
        self._saved = {k: os.environ.get(k) for k in self._values}
        os.environ.update(self._values)

    def __exit__(self, *exc):
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
