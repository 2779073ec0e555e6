"""The warm run worker: a process that imports Dagster's run-worker code and the heavy SDKs once, then forks one
child per run. Each child does what `dagster api execute_run` does, without paying ~2 s of CPU for a new Python
process and its imports (BENCHMARKS.md, case 3).

Protocol (from `WarmRunLauncher`): one serialized `ExecuteRunArgs` per line on stdin; the worker answers each with
the child's `pid starttime` on the reply pipe. End of stdin (the daemon stopped or died) ends the worker; runs
already started go on to their end.
"""

import argparse
import importlib
import os
import signal
import sys
import traceback


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    for entry in ["dagster._cli.api", *args.preload]:
        _preload(entry)
    # Children are reaped by the kernel: the worker never waits on them, and a finished run leaves no zombie.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # A terminal's Ctrl-C reaches the whole process group; the worker ends with the daemon (end of stdin) instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with os.fdopen(args.reply_fd, "w", buffering=1) as replies:
        for line in sys.stdin:
            if line.strip():
                pid = _fork_run(line.strip(), replies.fileno())
                state = process_state(pid)
                replies.write(f"{pid} {state[1] if state else '?'}\n")
    return 0


def _preload(entry: str) -> None:
    """`module` imports it; `module:function` also calls the function (e.g. to parse data every run needs)."""
    module, _, function = entry.partition(":")
    loaded = importlib.import_module(module)
    if function:
        getattr(loaded, function)()


def _fork_run(execute_run_args: str, reply_fd: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the run's own subprocesses must be waitable
        signal.signal(signal.SIGINT, signal.default_int_handler)  # cancel interrupts the run (launcher.terminate)
        os.close(reply_fd)
        os.close(sys.stdin.fileno())
        code = _execute_run(execute_run_args)
    except BaseException:  # os._exit below would swallow it: leave the reason in the run worker's stderr
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # never return into the worker's loop


def _execute_run(execute_run_args: str) -> int:
    """`dagster api execute_run`, minus the process start."""
    from dagster._cli.api import _execute_run_command_body
    from dagster._core.instance import DagsterInstance
    from dagster._grpc.types import ExecuteRunArgs
    from dagster._serdes import deserialize_value
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts():
        args = deserialize_value(execute_run_args, ExecuteRunArgs)
        with DagsterInstance.from_ref(args.instance_ref) as instance:
            return _execute_run_command_body(
                args.run_id, instance, lambda _event: None, set_exit_code_on_failure=bool(args.set_exit_code_on_failure)
            )


def process_state(pid: int) -> tuple[str, str] | None:
    """(state, start time) of `pid` from /proc, or None when it is gone. The start time (clock ticks since boot)
    with the pid names one process, even after the pid number is reused."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return None


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reply-fd", type=int, required=True)
    parser.add_argument("--preload", action="append", default=[], help="module (or module:function to call) to load before forking runs")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
