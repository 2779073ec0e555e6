"""Run the benchmarks and write BENCHMARKS.md: `python -m benchmarks [--smoke] [--out FILE] [--cases 1,2,5]`."""

import argparse
import datetime
import platform
import sys
from importlib import metadata

from benchmarks import cases
from benchmarks.harness import Measurement, local_stack

FULL = {"runs": 5, "images": 8, "latency": 1.0, "planner": 0.3, "per_step": 4, "rerun_images": 8}
SMOKE = {"runs": 1, "images": 2, "latency": 0.05, "planner": 0.02, "per_step": 1, "rerun_images": 2}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    sizes = SMOKE if args.smoke else FULL
    wanted = set(args.cases.split(",")) if args.cases else {"1", "2", "3", "4", "5", "6", "7", "8", "9"}
    results: list[Measurement] = []
    with local_stack() as stack:
        if "1" in wanted or "0" in wanted:
            results += cases.dagster_floor(stack, sizes["runs"])
        if "1" in wanted:
            results += cases.one_step_parallel_vs_sequential(
                stack, sizes["runs"], sizes["images"], sizes["latency"], sizes["planner"]
            )
        if "2" in wanted:
            results += cases.three_image_steps_and_text(stack, sizes["runs"], sizes["per_step"], sizes["latency"], sizes["planner"])
        if "5" in wanted:
            results += cases.rerun_of_finished_partition(stack, sizes["runs"], sizes["rerun_images"])
    for extra_case in _out_of_process_cases(wanted, args.smoke):
        results += extra_case()
    report = render(results, smoke=args.smoke)
    print(report)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(report)
    return 0


def _out_of_process_cases(wanted: set[str], smoke: bool) -> list:
    """Cases that need their own processes (memory) or the daemon (throughput, sensor, coordinator)."""
    selected = []
    try:
        from benchmarks import memory

        if "4" in wanted:
            selected.append(lambda: memory.run(smoke))
    except ImportError:
        pass
    try:
        from benchmarks import throughput

        if "3" in wanted:
            selected.append(lambda: throughput.run(smoke))
        if "6" in wanted:
            selected.append(lambda: throughput.sensor_tick(smoke))
    except ImportError:
        pass
    if "7" in wanted:
        from benchmarks import burst

        selected.append(lambda: burst.run(smoke))
    if "8" in wanted:
        from benchmarks import coordinator

        selected.append(lambda: coordinator.run(smoke))
    parts = "".join(case[1:] or "abc" for case in wanted if case.startswith("9"))  # 9 = 9a, 9b and 9c
    if parts:
        from benchmarks import deployment

        selected.append(lambda: deployment.run(smoke, parts))
    return selected


def render(results: list[Measurement], smoke: bool) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Measured on the local stack (moto over HTTP + imageflow's local OpenAI server with injected latency),",
        "each comparison side by side in the same run. Reproduce with `make bench` (`python -m benchmarks --out "
        "BENCHMARKS.md`).",
        "",
        "| case | target | median | min | max | runs | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in results:
        met = {True: "yes", False: "**no**"}.get(m.extra.get("met"), "")
        lines.append(
            f"| {m.case} | {m.target} | {_fmt(m.median, m.unit)} | {_fmt(min(m.samples), m.unit)} "
            f"| {_fmt(max(m.samples), m.unit)} | {len(m.samples)} | {met} |"
        )
    notes = [f"- {m.case}: {m.extra['note']}" for m in results if m.extra.get("note")]
    if notes:
        lines += ["", "Notes:", *notes]
    lines += ["", "## Machine", "", *_machine(smoke)]
    return "\n".join(lines) + "\n"


def _fmt(value: float, unit: str) -> str:
    if unit == "calls":
        return f"{value:g}"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:.2f} {unit}".replace(" x", "x")


def _machine(smoke: bool) -> list[str]:
    import os

    packages = ", ".join(f"{p} {metadata.version(p)}" for p in ("dagster", "dagster-aws", "openai", "moto", "boto3", "Pillow"))
    return [
        f"- date: {datetime.date.today().isoformat()}{' (smoke mode: tiny sizes, not the real figures)' if smoke else ''}",
        f"- cores: {os.cpu_count()}, platform: {platform.platform()}",
        f"- Python {sys.version.split()[0]}; {packages}",
    ]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run each (CI keeps them working)")
    parser.add_argument("--out", help="write the markdown report here (e.g. BENCHMARKS.md)")
    parser.add_argument("--cases", help="comma-separated case numbers (default: all); 9a, 9b, 9c: parts of case 9")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())
