"""The benchmarks keep working: a tiny-size run of the in-process cases (no timing is asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.e2e
def test_benchmark_smoke_run_writes_a_report(tmp_path):
    report = tmp_path / "BENCHMARKS.md"
    subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--cases", "1,5,6", "--out", str(report)],
        cwd=ROOT, check=True, capture_output=True, timeout=300,
    )
    text = report.read_text()
    for case in ("1. one image step", "5. OpenAI calls on rerun", "6. sensor tick"):
        assert case in text
    assert "| 5. OpenAI calls on rerun (images + responses) | 0 | 0 |" in text
