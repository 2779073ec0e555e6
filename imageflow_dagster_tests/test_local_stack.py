"""The embedded local stack: separate processes, data that survives a restart, and `imageflow dev` stopping
every child on Ctrl-C."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from imageflow_dagster.local.stack import LocalStack, _free_port
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


def test_data_survives_a_restart_and_stop_leaves_no_process(tmp_path, monkeypatch):
    home = tmp_path / "home"
    with LocalStack(home, fixed_ports=False) as stack:
        for key, value in stack.env.items():
            monkeypatch.setenv(key, value)
        db = build_resources(Settings.from_env())["dynamodb"]
        db.put_item(db.jobs_table, {"job_id": "job_persisted", "status": "completed"})
        pids = stack.pids
    assert not any(_alive(pid) for pid in pids)
    with LocalStack(home, fixed_ports=False) as stack:
        for key, value in stack.env.items():
            monkeypatch.setenv(key, value)
        db = build_resources(Settings.from_env())["dynamodb"]
        assert db.get_item(db.jobs_table, {"job_id": "job_persisted"})["status"] == "completed"
    assert (home / "dagster" / "dagster.yaml").exists()
    assert dg.DagsterInstance.from_config(str(home / "dagster")).run_retries_enabled


def test_imageflow_dev_comes_up_and_ctrl_c_stops_everything(tmp_path):
    command = [str(Path(sys.executable).parent / "imageflow"), "dev", "--no-demo", "--home", str(tmp_path), "--port", str(_free_port())]
    dev = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True, cwd=tmp_path)
    try:
        lines = []
        for line in dev.stdout:
            lines.append(line)
            if line.startswith("Dagster UI: http://127.0.0.1:"):
                break
        assert any(line.startswith("Dagster UI:") for line in lines), lines
        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=60) == 0
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
    assert _group_members(dev.pid) == []  # dagster dev got its own session; check nothing of ours is left:
    leftovers = [p for p in Path("/proc").glob("[0-9]*/cmdline") if str(tmp_path).encode() in _read(p)]
    assert leftovers == []


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
