"""Every module of imageflow_dagster imports with what setup.py declares, and nothing else.

No install: setup.py's requirements are followed through this venv's installed metadata (which `make install`
took from constraints.txt) to their transitive closure, every file of those distributions is symlinked into one
directory, and a fresh interpreter without site-packages (`-I -S`) imports the modules with only that directory
on sys.path. A package outside the closure raises ModuleNotFoundError there, as in a clean install of the
declared dependencies; a few seconds instead of a pip install.

Modules that need an extra (EXTRA_MODULES) are imported with that extra added, and must fail without it: that
failure is what shows the environment really lacks undeclared packages.
"""

import ast
import functools
import importlib.metadata
import json
import runpy
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "imageflow_dagster"
STDLIB = {*sys.stdlib_module_names, "tomllib"}  # tomllib: cli.py takes tomli before 3.11

# module -> (extra it needs, the top-level import the runtime dependencies lack)
EXTRA_MODULES = {
    "imageflow_dagster.instance_storage": ("deploy", "dagster_postgres"),
    "imageflow_dagster.run_workers.celery_launcher": ("deploy", "dagster_celery"),
    "imageflow_dagster.run_workers.celery_worker": ("deploy", "celery"),
    "imageflow_dagster.local.moto_atomic": ("local", "moto"),
    "imageflow_dagster.local.moto_process": ("local", "moto"),
}

# Runs in the bare interpreter: import each module, report failures and any module loaded from outside the tree.
CHILD = r"""
import importlib, json, sys, sysconfig
tree = sys.path[0]
errors = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        errors[name] = f"{type(exc).__name__}: {exc}"
stdlib = sysconfig.get_paths()["stdlib"]
leaked = sorted(
    name for name, module in list(sys.modules.items())
    if (path := getattr(module, "__file__", None))
    and not path.startswith(tree) and (not path.startswith(stdlib) or "site-packages" in path)
)
print(json.dumps({"errors": errors, "leaked": leaked}))
"""


def declared() -> tuple[list[str], dict[str, list[str]]]:
    """setup.py's install_requires and extras_require, read from the file itself (not possibly stale metadata)."""
    captured = {}
    with mock.patch("setuptools.setup", lambda **kwargs: captured.update(kwargs)):
        runpy.run_path(str(ROOT / "setup.py"))
    return captured["install_requires"], captured["extras_require"]


def closure(requirements: list[str]) -> dict[str, importlib.metadata.Distribution]:
    """The installed distributions these requirements pull in, transitively, by canonical name."""
    found: dict[str, importlib.metadata.Distribution] = {}
    expanded: set[tuple[str, str]] = set()  # (name, extra) whose requirements are queued
    queue = [(Requirement(text), "") for text in requirements]
    while queue:
        requirement, extra = queue.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        found.setdefault(name, installed(requirement))
        for wanted in {"", *requirement.extras}:
            if (name, wanted) not in expanded:
                expanded.add((name, wanted))
                queue += [(Requirement(text), wanted) for text in found[name].requires or []]
    return found


def installed(requirement: Requirement) -> importlib.metadata.Distribution:
    try:
        dist = importlib.metadata.distribution(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{requirement} is required but not installed in this venv: run `make install`")
    if not requirement.specifier.contains(dist.version, prereleases=True):
        pytest.fail(f"{requirement} is required but {dist.version} is installed: run `make install`")
    return dist


@functools.cache
def owners() -> dict[str, frozenset[str]]:
    """Top-level entry of site-packages -> the installed distributions with files under it."""
    found: dict[str, set[str]] = {}
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for relative in dist.files or []:
            found.setdefault(relative.parts[0], set()).add(name)
    return {top: frozenset(names) for top, names in found.items()}


def link_tree(dists, dest: Path) -> Path:
    """One directory holding exactly these distributions' files and this source tree's package. A top-level
    directory that one distribution owns is linked whole; one shared with others (a namespace package,
    __pycache__) file by file, so it brings nothing of a distribution outside the closure."""
    for dist in dists:
        name = canonicalize_name(dist.metadata["Name"])
        for relative in dist.files or pytest.fail(f"{name} has no RECORD to link"):
            top = relative.parts[0]
            if top == "..":  # console scripts beside the venv's bin/
                continue
            link = Path(top) if owners()[top] == {name} else relative
            target = dest / link
            if not target.is_symlink():  # linked already, whole or by an earlier file
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(dist.locate_file(link))
    (dest / PACKAGE).symlink_to(ROOT / PACKAGE, target_is_directory=True)
    return dest


def environment(tmp_path_factory, extra: str | None = None) -> Path:
    runtime, extras = declared()
    dists = closure([*runtime, *extras[extra]] if extra else runtime)
    return link_tree(dists.values(), tmp_path_factory.mktemp(f"env-{extra or 'runtime'}"))


def bare_python(tree: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    """`code` in this interpreter with sys.path = `tree` + the standard library: no site-packages (-S), no
    PYTHON* variables or current directory (-I), no bytecode writes (-B)."""
    code = f"import sys; sys.path.insert(0, {str(tree)!r})\n{code}"
    command = [sys.executable, "-I", "-S", "-B", "-c", code, *args]
    return subprocess.run(command, cwd=tree, capture_output=True, text=True, timeout=60)


def import_in(tree: Path, modules: list[str]) -> dict:
    done = bare_python(tree, CHILD, *modules)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def all_modules() -> list[str]:
    """Every module of the package, found on disk (walking it by import would need the dependencies)."""
    names = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def providers() -> dict[str, set[str]]:
    """Top-level import name -> installed distributions holding it, from their RECORDs (3.10's
    importlib.metadata.packages_distributions reads only top_level.txt, which most wheels lack)."""
    found: dict[str, set[str]] = {}
    for top, names in owners().items():
        if top not in ("..", "__pycache__") and not top.endswith((".dist-info", ".egg-info", ".pth")):
            found.setdefault(top.split(".")[0], set()).update(names)
    return found


def imported_top_levels(path: Path) -> set[str]:
    """Top-level names of the absolute imports in one file, module level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory) -> Path:
    return environment(tmp_path_factory)


def test_every_third_party_import_is_declared_by_name():
    """Arriving through another package (as httpx once came with dagster-dg-cli) is not enough: a third-party
    import names a distribution that setup.py lists itself, in install_requires or an extra."""
    runtime, extras = declared()
    listed = {canonicalize_name(Requirement(text).name) for text in [*runtime, *sum(extras.values(), [])]}
    holders = providers()
    undeclared = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        for name in imported_top_levels(path) - STDLIB - {PACKAGE}:
            if not holders.get(name, set()) & listed:
                undeclared.setdefault(name, []).append(path.relative_to(ROOT).as_posix())
    assert not undeclared, f"imported but not in setup.py: {undeclared}"


def test_runtime_dependencies_import_every_module_outside_the_extras(runtime_env):
    modules = [name for name in all_modules() if name not in EXTRA_MODULES]
    assert len(modules) > 100  # the walk found the package
    report = import_in(runtime_env, modules)
    assert report == {"errors": {}, "leaked": []}


@pytest.mark.parametrize("extra", sorted({extra for extra, _ in EXTRA_MODULES.values()}))
def test_extra_modules_import_with_their_extra(tmp_path_factory, extra):
    modules = [name for name, (needs, _) in EXTRA_MODULES.items() if needs == extra]
    report = import_in(environment(tmp_path_factory, extra), modules)
    assert report == {"errors": {}, "leaked": []}


def test_extra_modules_fail_without_their_extra(runtime_env):
    """The negative control: an undeclared package is really absent from the runtime environment."""
    report = import_in(runtime_env, list(EXTRA_MODULES))
    assert report["errors"] == {
        name: f"ModuleNotFoundError: No module named '{missing}'" for name, (_, missing) in EXTRA_MODULES.items()
    }


def test_imageflow_dev_names_the_local_extra_when_it_is_missing(runtime_env):
    done = bare_python(runtime_env, "from imageflow_dagster.cli import main; sys.exit(main(['dev']))")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "imageflow: dagster-dg-cli, moto[server] missing: `imageflow dev` needs the local extra "
        "(pip install -e '.[local]')"
    )


def test_the_lock_pins_every_dependency_at_the_installed_release():
    runtime, extras = declared()
    dists = closure([*runtime, *(text for reqs in extras.values() for text in reqs)])
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            pin = Requirement(line)
            if pin.marker is None or pin.marker.evaluate():
                pins[canonicalize_name(pin.name)] = str(pin.specifier).removeprefix("==")
    unpinned = sorted(name for name in dists if name not in pins)
    assert not unpinned, f"not in constraints.txt (run `make lock`): {unpinned}"
    drifted = {name: (dist.version, pins[name]) for name, dist in dists.items() if dist.version != pins[name]}
    assert not drifted, f"installed vs locked (run `make install`): {drifted}"
