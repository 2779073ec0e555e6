"""The `local` extra (setup.py's LOCAL): what the embedded local stack needs beyond the runtime dependencies.
`imageflow dev` checks it before starting anything, so an install without it fails in one line naming the
extra instead of a moto process or `dg dev` dying in a log file."""

import importlib.util

# import name -> the requirement of the local extra that provides it
LOCAL_EXTRA_MODULES = {
    "dagster_dg_cli": "dagster-dg-cli",  # `dg dev`: webserver + daemon
    "moto": "moto[server]",  # local/moto_process.py
    "flask": "moto[server]",  # ThreadedMotoServer's app comes from moto's server extra
    "flask_cors": "moto[server]",
}


def missing_local_extra() -> list[str]:
    """The local extra's requirements whose modules cannot be found here, in setup.py's spelling."""
    missing = {req for module, req in LOCAL_EXTRA_MODULES.items() if importlib.util.find_spec(module) is None}
    return sorted(missing)
