"""The embedded local stack: separate processes, data and ports that survive a restart, and `imageflow dev`
running its demo job to completion and stopping every child on Ctrl-C."""

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import pytest

from imageflow_dagster.local.stack import LocalStack
from imageflow_dagster.resources import build_resources
from imageflow_dagster.settings import Settings

pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _distinct_free_ports(n: int) -> list[int]:
    with ExitStack() as held:
        probes = [held.enter_context(socket.socket()) for _ in range(n)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def test_data_and_ports_survive_a_restart_and_stop_leaves_no_process(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    saved = dict(zip(("moto", "openai", "ui"), _distinct_free_ports(3)))
    (home / "ports.json").write_text(json.dumps(saved))
    with socket.socket() as busy:  # something else took the saved UI port since: a free one replaces it
        busy.bind(("127.0.0.1", saved["ui"]))
        busy.listen()
        with LocalStack(home) as stack:
            for key, value in stack.env.items():
                monkeypatch.setenv(key, value)
            first = dict(stack.ports)
            assert stack.env["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{saved['moto']}"
            assert stack.env["OPENAI_BASE_URL"] == f"http://127.0.0.1:{saved['openai']}/v1"
            db = build_resources(Settings.from_env())["dynamodb"]
            db.put_item(db.jobs_table, {"job_id": "job_persisted", "status": "completed"})
            pids = stack.pids
    assert (first["moto"], first["openai"]) == (saved["moto"], saved["openai"]) and first["ui"] != saved["ui"]
    assert json.loads((home / "ports.json").read_text()) == first
    assert not any(_alive(pid) for pid in pids)
    with LocalStack(home) as stack:
        for key, value in stack.env.items():
            monkeypatch.setenv(key, value)
        assert stack.ports == first  # the second start reuses every remembered port
        db = build_resources(Settings.from_env())["dynamodb"]
        assert db.get_item(db.jobs_table, {"job_id": "job_persisted"})["status"] == "completed"
    assert (home / "dagster" / "dagster.yaml").exists()
    assert dg.DagsterInstance.from_config(str(home / "dagster")).run_retries_enabled


def test_imageflow_dev_runs_the_demo_job_to_completion_and_ctrl_c_stops_everything(tmp_path):
    moto_port, openai_port, ui_port = _distinct_free_ports(3)  # remembered ports, not the shared defaults
    (tmp_path / "ports.json").write_text(json.dumps({"moto": moto_port, "openai": openai_port, "ui": ui_port}))
    command = [str(Path(sys.executable).parent / "imageflow"), "dev", "--home", str(tmp_path), "--timeout", "200"]
    env = {**os.environ, "IMAGEFLOW_SENSOR_INTERVAL_S": "1", "PYTHONUNBUFFERED": "1"}  # lines as they are printed
    dev = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True, cwd=tmp_path, env=env)
    try:
        lines = []
        for line in dev.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("demo job job_"):  # the demo job ended, or did not in time
                break
        stack_line = f"local stack: moto http://127.0.0.1:{moto_port}, OpenAI http://127.0.0.1:{openai_port}/v1"
        assert lines[0].startswith(stack_line), lines
        assert any(line.startswith(f"Dagster UI: http://127.0.0.1:{ui_port}") for line in lines), lines
        submitted = re.fullmatch(r"demo job submitted: (job_\w+) .*", lines[-2])
        assert submitted and lines[-1] == f"demo job {submitted[1]}: completed", lines
        report = [next(dev.stdout).rstrip("\n") for _ in range(6)]  # cost, then the demo's 5 images
        assert float(re.fullmatch(r"  cost: \$([0-9.]+)", report[0])[1]) > 0, report
        urls = [line.removeprefix("  image: ") for line in report[1:]]
        assert all(url.startswith(f"http://127.0.0.1:{moto_port}/") for url in urls), report
        assert urllib.request.urlopen(urls[0], timeout=10).read()[:8] == b"\x89PNG\r\n\x1a\n"
        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=60) == 0
    finally:
        _stop(dev)
    assert _group_members(dev.pid) == []  # dg dev got its own session; check nothing of ours is left:
    leftovers = [p for p in Path("/proc").glob("[0-9]*/cmdline") if str(tmp_path).encode() in _read(p)]
    assert leftovers == []
    log = (tmp_path / "dagster-dev.log").read_text()  # `dg dev`, no superseded Dagster command
    assert "Launching Dagster services" in log and "superseded" not in log.lower(), log[-3000:]


def _stop(dev: subprocess.Popen) -> None:
    """After a failed assertion: Ctrl-C, so that `imageflow dev` stops the processes it started in their own
    sessions (moto, OpenAI, dg dev); SIGKILL only if it does not exit."""
    if dev.poll() is None:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_the_stack_s_openai_plays_shut_down_models_rate_limits_and_quota(local_stack):
    import openai

    stack = local_stack(images_per_minute=2, shut_down_models=("gpt-image-1.5",))
    sdk = openai.OpenAI(base_url=stack.env["OPENAI_BASE_URL"], api_key="local", max_retries=0)
    with pytest.raises(openai.NotFoundError) as gone:
        sdk.images.generate(model="gpt-image-1.5", prompt="p")
    assert gone.value.code == "model_not_found"
    sdk.images.generate(model="gpt-image-2.6-sunburst", prompt="p")
    sdk.images.generate(model="gpt-image-2.6-sunburst", prompt="p")
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.images.generate(model="gpt-image-2.6-sunburst", prompt="p")
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.response.headers["x-ratelimit-limit-images"] == "2"

    quota = local_stack(quota_exhausted=True)
    broke = openai.OpenAI(base_url=quota.env["OPENAI_BASE_URL"], api_key="local", max_retries=0)
    with pytest.raises(openai.RateLimitError) as spent:
        broke.images.generate(model="gpt-image-2.6-sunburst", prompt="p")
    assert spent.value.code == "insufficient_quota"


def test_a_started_stack_s_dagster_home_opens_from_many_processes_at_once(local_stack):
    """The daemon, the workers and a test open the Dagster home together; its storage is created before any of
    them starts, so no two processes stamp a fresh schema at the same moment (which leaves it unopenable)."""
    stack = local_stack()
    home = Path(stack.env["DAGSTER_HOME"])
    for database in ("history/runs.db", "schedules/schedules.db"):
        with sqlite3.connect(home / database) as connection:
            assert len(connection.execute("SELECT version_num FROM alembic_version").fetchall()) == 1
    opener = "import dagster as dg, sys; dg.DagsterInstance.from_config(sys.argv[1]).get_runs()"
    openers = [
        subprocess.Popen([sys.executable, "-c", opener, stack.env["DAGSTER_HOME"]], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    assert [(p.wait(60), p.stderr.read()) for p in openers] == [(0, b"")] * 4
