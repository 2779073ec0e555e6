"""`python -m imageflow_dagster.cli`: the `imageflow` console script without the script."""

from imageflow_dagster.cli import main

if __name__ == "__main__":  # imported (by the dependency tests' walk of every module), it does nothing
    raise SystemExit(main())
