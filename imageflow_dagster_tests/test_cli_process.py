"""`imageflow` run as the installed console script: every command's `--help` lists its options, parsing imports
no heavy library (Dagster, boto3, the OpenAI SDK, pydantic and the log setup load only when a command runs), and
a command that runs does set up the process's logs."""

import json
import os
import re
import select
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

IMAGEFLOW = Path(sys.executable).with_name("imageflow")  # setup.py's console script, beside this interpreter
OPTIONS = {
    "dev": ["--no-demo", "--port", "--home", "--timeout", "--seed-tables", "--image-latency", "--images-per-minute",
            "--shut-down-models", "--quota-exhausted"],
    "bootstrap": ["--public-images", "--seed-tables"],
    "submit": ["--workflow", "--demo", "--answer", "--answers", "--tenant"],
    "status": ["job_id", "--json"],
    "spend": ["--since", "--tenant", "--json"],
    "local-openai": ["--host", "--port", "--image-latency", "--response-latency", "--image-payload",
                     "--images-per-minute", "--rate-limit-algorithm", "--refused-calls-count",
                     "--rate-limit-per-model", "--shut-down-models", "--quota-exhausted"],
    "worker": ["--concurrency", "--queue", "--name"],
}
HEAVY = ("dagster", "boto3", "botocore", "openai", "pydantic", "imageflow_dagster.observability.logs")


def imageflow(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(IMAGEFLOW), *args], capture_output=True, text=True, timeout=timeout_s)


def test_the_top_level_help_names_every_command():
    done = imageflow("--help")
    assert done.returncode == 0, done.stderr
    assert set(OPTIONS) <= set(re.findall(r"^    ([a-z-]+)\s", done.stdout, re.M))


@pytest.mark.parametrize("command", sorted(OPTIONS))
def test_each_command_s_help_lists_its_options(command):
    done = imageflow(command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: imageflow {command} ")
    listed = re.findall(r"^  (?:-\w, )?(--[a-z-]+|[a-z_]+)\b", done.stdout, re.M)  # first column of each option
    assert [option for option in OPTIONS[command] if option not in listed] == []


def test_help_of_every_command_imports_no_heavy_library():
    probe = f"""
import contextlib, io, json, sys
from imageflow_dagster.cli import main
for argv in [["--help"], *([command, "--help"] for command in {sorted(OPTIONS)!r})]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(argv)
after_help = [name for name in {HEAVY!r} if name in sys.modules]
import imageflow_dagster.cli.jobs  # what `imageflow status` runs: the control, the probe sees heavy imports
print(json.dumps({{"after_help": after_help, "after_jobs": [name for name in {HEAVY!r} if name in sys.modules]}}))
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["after_help"] == []
    assert {"dagster", "boto3"} <= set(report["after_jobs"])


def test_a_command_that_runs_logs_as_json_when_asked(tmp_path):
    unreachable = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1", "AWS_ACCESS_KEY_ID": "key",
                   "AWS_SECRET_ACCESS_KEY": "secret", "AWS_DEFAULT_REGION": "us-east-1"}
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "IMAGEFLOW_LOG_FORMAT": "json", **unreachable}
    done = subprocess.run([str(IMAGEFLOW), "status", "job_x"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr == "imageflow: cannot reach AWS at http://127.0.0.1:9/: connection refused\n"
    records = [json.loads(line) for line in done.stdout.splitlines()]  # every line JSON: boto's own records
    assert "botocore.credentials" in {record["logger"] for record in records}


def test_local_openai_serves_with_the_options_it_was_given():
    server = subprocess.Popen([str(IMAGEFLOW), "local-openai", "--port", "0", "--quota-exhausted"],
                              stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([server.stdout], [], [], 30)  # the base URL, printed once it listens
        assert ready, "imageflow local-openai printed no base URL within 30 s"
        base_url = server.stdout.readline().strip()
        body = json.dumps({"model": "gpt-image-1.5", "prompt": "a red fox"}).encode()
        request = urllib.request.Request(f"{base_url}/images/generations", data=body, method="POST",
                                         headers={"content-type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 429
        assert json.loads(refused.value.read())["error"]["code"] == "insufficient_quota"
    finally:
        server.terminate()
        assert server.wait(timeout=10) == 0  # SIGTERM: a clean stop


def test_local_openai_refuses_a_negative_rate():
    done = imageflow("local-openai", "--images-per-minute", "-1")
    assert done.returncode == 2
    assert "argument --images-per-minute: must be >= 0, got -1" in done.stderr
