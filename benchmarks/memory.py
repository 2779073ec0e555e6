"""Case 4: peak RSS of a run whose job makes 24 images of ~3 MB, against the same job with 4x the images.

Measured here, the peak climbs over the first waves (8 images: 244 MB, 24: 292 MB) while the allocator's per-thread
arenas fill, then stays flat (48: 294 MB, 96: 298 MB): the growth that matters is past the first waves."""

import os
import subprocess
import sys
import tempfile

from benchmarks.harness import Measurement
from imageflow_dagster.local.stack import LocalStack


def run(smoke: bool) -> list[Measurement]:
    sizes, runs = ((2, 4), 1) if smoke else ((24, 96), 5)
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
    target, large = sizes
    growth = (min(peaks[large]) - min(peaks[target])) / (large - target)
    each_mb = stored[large] / large / 1e6
    return [
        Measurement(
            f"4. peak RSS, job of {target} images (~{each_mb:.1f} MB each)",
            "<= 400 MB",
            peaks[target],
            unit="MB",
            extra={"met": max(peaks[target]) <= 400},
        ),
        Measurement(f"4. peak RSS, same job with {large} images", "-", peaks[large], unit="MB"),
        Measurement(
            f"4. RSS growth per extra image, {target} -> {large} images (min of each)",
            "~0: bounded by the concurrency window",
            [growth],
            unit="MB",
            extra={"note": f"{large - target} more images of {each_mb:.1f} MB each"},
        ),
    ]
