"""Case 4: peak RSS of a run whose job makes 24 images of ~3 MB, against the same job with 8 images."""

import os
import subprocess
import sys
import tempfile

from benchmarks.harness import Measurement
from imageflow_dagster.local.stack import LocalStack


def run(smoke: bool) -> list[Measurement]:
    sizes, runs = ((2, 4), 1) if smoke else ((8, 24), 5)
    with tempfile.TemporaryDirectory() as home, LocalStack(home, fixed_ports=False, image_payload="noise", persist=False) as stack:
        env = {**os.environ, **stack.env}
        peaks = {n: [] for n in sizes}
        stored = {}
        for _ in range(runs):
            for n in sizes:
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.memory_probe", "--images", str(n)],
                    env=env, check=True, capture_output=True, text=True,
                ).stdout.split()
                peaks[n].append(float(out[-2]))
                stored[n] = int(out[-1])
    small, large = sizes
    growth = (min(peaks[large]) - min(peaks[small])) / (large - small)
    return [
        Measurement(
            f"4. peak RSS, job of {large} images (~{stored[large] / large / 1e6:.1f} MB each)",
            "<= 400 MB",
            peaks[large],
            unit="MB",
            extra={"met": max(peaks[large]) <= 400},
        ),
        Measurement(f"4. peak RSS, same job with {small} images", "-", peaks[small], unit="MB"),
        Measurement(
            "4. RSS growth per extra image (min of each)",
            "~0: bounded by the concurrency window",
            [growth],
            unit="MB",
            extra={"note": f"{large - small} more images of {stored[large] / large / 1e6:.1f} MB each"},
        ),
    ]
