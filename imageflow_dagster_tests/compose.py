"""deploy/compose.yaml's services as processes, for tests on a machine without a container engine: each service's
command, and the environment compose would give its container, interpolated from the shell's the way compose does
it (`${NAME:-default}`, `${NAME:?error}`, and a key without a value passed through only when the shell has it)."""

import re
from collections.abc import Mapping
from pathlib import Path

import yaml

COMPOSE_YAML = Path(__file__).resolve().parents[1] / "deploy" / "compose.yaml"
_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


class MissingVariable(KeyError):
    pass


def interpolate(value: str, shell: Mapping[str, str]) -> str:
    def substitute(match: re.Match) -> str:
        name, operator, argument = match.groups()
        if shell.get(name):
            return shell[name]
        if operator == "?":
            raise MissingVariable(f"{name}: {argument}")
        return argument if operator == "-" else ""

    return _VARIABLE.sub(substitute, value)


def service(name: str, shell: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """(command, environment) of the compose service `name`, run from a shell whose variables are `shell`."""
    spec = yaml.safe_load(COMPOSE_YAML.read_text())["services"][name]
    environment = {}
    for key, value in (spec.get("environment") or {}).items():
        if value is not None:
            environment[key] = interpolate(str(value), shell)
        elif key in shell:
            environment[key] = shell[key]
    return [interpolate(str(part), shell) for part in spec["command"]], environment
