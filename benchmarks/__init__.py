"""imageflow benchmarks: `python -m benchmarks` (full) or `python -m benchmarks --smoke` (tiny sizes, for CI)."""
