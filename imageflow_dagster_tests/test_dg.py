"""`dg check defs` (dagster-dg-cli) from the repo root: pyproject.toml's [tool.dg] names the project, and its
definitions load and validate; with a setting that breaks them, the same command fails."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DG = Path(sys.executable).parent / "dg"
LOADED = "All definitions loaded successfully."


def _dg(args: list[str], dagster_home: Path, **env: str) -> subprocess.CompletedProcess:
    """`dg` from the venv's bin dir in the repo root, on a throwaway Dagster home (telemetry off)."""
    dagster_home.mkdir(exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    environment = {**os.environ, "DAGSTER_HOME": str(dagster_home), "VIRTUAL_ENV": sys.prefix, **env}
    return subprocess.run(
        [str(DG), *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=240
    )


def test_dg_check_defs_passes(tmp_path):
    result = _dg(["check", "defs"], tmp_path / "dagster")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert LOADED in result.stdout, output[-3000:]
    assert "superseded" not in output.lower(), output[-3000:]


def test_dg_check_defs_fails_when_the_definitions_do_not_load(tmp_path):
    """The control: Dagster rejects the retention schedule a bad setting makes, and `dg check defs` reports it
    with exit code 1."""
    result = _dg(["check", "defs"], tmp_path / "dagster", IMAGEFLOW_RETENTION_CRON="every day")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "invalid cron schedule 'every day'" in output and LOADED not in output, output[-3000:]


def test_dg_reads_the_project_from_pyproject(tmp_path):
    result = _dg(["check", "toml"], tmp_path / "dagster")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert f"Found project configuration file: {ROOT / 'pyproject.toml'}" in output, output[-3000:]
    assert "Project configuration file is valid." in output, output[-3000:]
