"""Imports flow one way (issue 22): models < resources < flow < steps < assets < sensors/definitions.

A unit is a subpackage of imageflow_dagster (flow, steps, ...) or a top-level module (settings.py, jobs.py, ...).
LAYERS places every unit, lowest first; a module may import from its own layer or a lower one, never a higher
one, and no units import each other round a loop (within a layer either). So a folder reads with only the folders
below it: flow/ without steps/, resources/ without flow/.

Every import counts: at the top of a module, inside a function (the CLI's lazy imports), and under
`if TYPE_CHECKING:`. A type-only import still makes the lower module unreadable without the higher one, and one
(steps/base.py's, of flow/loading.py) is what closed the flow -> steps -> flow loop this test was written against.

Pure: the sources are parsed with ast, nothing is imported.
"""

import ast
from pathlib import Path

PACKAGE = "imageflow_dagster"
PACKAGE_DIR = Path(__file__).resolve().parents[2] / PACKAGE

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Values and rules with no I/O, and the cross-cutting modules every layer may use: the typed settings, ids,
    # run tags, prices, model lifecycle, the jobs partitions definition, and logs/metrics (observability names
    # the DynamoDB resource it reads with by its shape, so it needs nothing above it).
    ("models", ("models", "settings", "ids", "run_tags", "pricing", "lifecycle", "partitions", "observability")),
    # Dagster resources (OpenAI, S3, DynamoDB) and what their APIs accept (resources/image_params.py).
    ("resources", ("resources", "aws_session")),
    # The image flow as plain functions over records and resources: loading, claims, generation, records.
    ("flow", ("flow",)),
    # Workflow step kinds (AI generation, webhook, handoff), how each runs, and the step runner.
    ("steps", ("steps",)),
    # Dagster assets and the job that materializes them.
    ("assets", ("assets", "jobs")),
    # What Dagster or an operator starts: sensors, definitions, alert sensor, retention job, CLI, table
    # bootstrap, submit (the seed API's writes, for the CLI and tests), local stack, run workers, instance storage.
    (
        "sensors/definitions",
        (
            "sensors",
            "definitions",
            "alerts",
            "retention",
            "cli",
            "bootstrap",
            "submit",
            "local",
            "run_workers",
            "instance_storage",
            "__init__",  # the package's own __init__.py (a docstring)
        ),
    ),
)
RANK = {unit: rank for rank, (_, units) in enumerate(LAYERS) for unit in units}
LAYER_NAME = {unit: name for name, units in LAYERS for unit in units}


def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(source: str, module: str, is_package: bool, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) for every import of the package in `source`, wherever it stands. `from pkg import name`
    counts as an import of `pkg.name` when that is a module, else of `pkg`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.append((node.lineno, name if name in known else base))
    return sorted({(line, name) for line, name in found if name == PACKAGE or name.startswith(PACKAGE + ".")})


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def import_edges() -> list[tuple[Path, int, str, str]]:
    """(file, line, importing module, imported module) for every import of one module of the package by another."""
    files = module_files()
    known = set(files)
    edges = []
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        for line, target in imported_modules(path.read_text(), module, is_package, known):
            edges.append((path, line, module, target))
    return edges


def unit_cycle(edges: list[tuple[str, str]]) -> list[str] | None:
    """One loop in the graph of units, as the units round it (first repeated last), or None."""
    graph: dict[str, set[str]] = {}
    for source, target in edges:
        if source != target:
            graph.setdefault(source, set()).add(target)
    done: set[str] = set()

    def visit(unit: str, path: list[str]) -> list[str] | None:
        if unit in path:
            return path[path.index(unit) :] + [unit]
        if unit in done:
            return None
        for target in sorted(graph.get(unit, ())):
            if cycle := visit(target, path + [unit]):
                return cycle
        done.add(unit)
        return None

    return next((cycle for unit in sorted(graph) if (cycle := visit(unit, []))), None)


def test_every_module_of_the_package_has_a_layer():
    unplaced = sorted({unit_of(module) for module in module_files()} - set(RANK))
    assert unplaced == [], f"place these in LAYERS (test_import_order.py): {unplaced}"


def test_no_module_imports_from_a_higher_layer():
    upward = [
        f"{path.relative_to(PACKAGE_DIR.parent)}:{line} imports {target} "
        f"({LAYER_NAME[unit_of(module)]} below {LAYER_NAME[unit_of(target)]})"
        for path, line, module, target in import_edges()
        if RANK.get(unit_of(target), -1) > RANK.get(unit_of(module), len(LAYERS))
    ]
    assert upward == []


def test_no_packages_import_each_other_round_a_loop():
    cycle = unit_cycle([(unit_of(module), unit_of(target)) for _, _, module, target in import_edges()])
    assert cycle is None, " -> ".join(cycle or [])


def test_the_scan_sees_type_only_lazy_and_relative_imports():
    source = (
        "from typing import TYPE_CHECKING\n"
        "from imageflow_dagster import lifecycle, settings\n"
        "from . import kinds\n"
        "if TYPE_CHECKING:\n"
        "    from imageflow_dagster.flow.loading import JobInputs\n"
        "def lazy():\n"
        "    import imageflow_dagster.assets.common\n"
    )
    known = {"imageflow_dagster.lifecycle", "imageflow_dagster.steps.kinds", "imageflow_dagster.flow.loading"}
    found = imported_modules(source, "imageflow_dagster.steps.base", False, known)
    assert found == [
        (2, "imageflow_dagster"),  # `settings` is not in `known` here: the package itself
        (2, "imageflow_dagster.lifecycle"),
        (3, "imageflow_dagster.steps.kinds"),
        (5, "imageflow_dagster.flow.loading"),
        (7, "imageflow_dagster.assets.common"),
    ]
    assert unit_cycle([("flow", "steps"), ("steps", "models"), ("steps", "flow")]) == ["flow", "steps", "flow"]
