"""README.md's configuration table, the one reference of every variable, says what the code reads.

Fast and service-free: it parses `imageflow_dagster/settings.py` with `ast` and greps the package and `deploy/`, so a
setting added, renamed or given a new default without its row fails here, not in a reader's deployment.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE = ROOT / "imageflow_dagster" / "settings.py"
REFERENCE = ROOT / "README.md"  # the configuration table: every variable
SEARCHED_FOR_READS = (ROOT / "imageflow_dagster", ROOT / "deploy")
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$")
ROW = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|([^|]*)\|")
NO_DEFAULT = object()  # the read has no literal default (a computed one, or none at all)
MISSING = object()


def _dotted(node: ast.AST) -> str:
    """`_env_int` for the callee of `_env_int(...)`, `os.environ.get` for that of `os.environ.get(...)`."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _literal(node: ast.AST | None):
    if node is None:
        return None  # os.getenv("X") without a default: unset means None
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    return NO_DEFAULT


def settings_reads() -> dict[str, list]:
    """Every variable settings.py reads, with each read's literal default (NO_DEFAULT when computed)."""
    reads: dict[str, list] = {}
    for node in ast.walk(ast.parse(SETTINGS_FILE.read_text())):
        if isinstance(node, ast.Call) and node.args and "env" in _dotted(node.func).lower():
            name = _literal(node.args[0])
            if isinstance(name, str) and ENV_NAME.match(name):
                reads.setdefault(name, []).append(_literal(node.args[1] if len(node.args) > 1 else None))
        elif isinstance(node, ast.Subscript) and _dotted(node.value).endswith("environ"):
            name = _literal(node.slice)
            if isinstance(name, str) and ENV_NAME.match(name):
                reads.setdefault(name, []).append(NO_DEFAULT)
    return reads


def documented_defaults(path: Path) -> dict[str, str]:
    """The configuration table's rows of one document: variable name -> its default cell, as written."""
    rows = {}
    for line in path.read_text().splitlines():
        match = ROW.match(line)
        if match:
            assert match.group(1) not in rows, f"{path.name}: {match.group(1)} has two rows"
            rows[match.group(1)] = match.group(2).strip()
    return rows


def _documented_literal(cell: str):
    """`8` -> "8"; _(empty)_ -> ""; _(unset)_ -> None; prose such as _(the partition retention)_ -> NO_DEFAULT."""
    if re.fullmatch(r"`[^`]*`", cell):
        return cell.strip("`")
    if cell == "_(empty)_":
        return ""
    if re.fullmatch(r"_\(unset(:[^)`]*)?\)_", cell):
        return None
    return NO_DEFAULT


def _same_default(documented, in_code) -> bool:
    if in_code is None or documented is None:
        return documented is in_code or (documented is None and in_code == "")
    if isinstance(in_code, bool):
        return documented.lower() == str(in_code).lower()
    if isinstance(in_code, (int, float)) or re.fullmatch(r"-?\d+(\.\d+)?", str(in_code)):
        try:
            return float(documented) == float(in_code)
        except ValueError:
            return False
    return documented == in_code


def _text_files_read_by_code():
    for folder in SEARCHED_FOR_READS:
        for path in folder.rglob("*"):
            # Markdown describes variables; only code and config files read them.
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".md", ".pyc", ".png"):
                yield path


@pytest.fixture(scope="module")
def code_text() -> str:
    return "\n".join(path.read_text(errors="ignore") for path in _text_files_read_by_code())


def test_settings_module_reads_variables():
    # Guards the parser itself: if settings.py changes shape and nothing is found, every check below is empty.
    reads = settings_reads()
    assert {"JOBS_TABLE", "OPENAI_BASE_URL", "IMAGEFLOW_IMAGE_CONCURRENCY"} <= set(reads)


def test_every_setting_has_a_row():
    documented = documented_defaults(REFERENCE)
    missing = sorted(set(settings_reads()) - set(documented))
    assert not missing, f"read in settings.py but not in {REFERENCE.name}: {missing}"


def test_every_row_is_read_by_the_code(code_text):
    unread = [
        name
        for name in documented_defaults(REFERENCE)
        if not re.search(rf"(?<![A-Z0-9_]){name}(?![A-Z0-9_])", code_text)
    ]
    assert not unread, f"documented but read nowhere in imageflow_dagster/ or deploy/: {unread}"


def test_documented_defaults_equal_the_code():
    document = REFERENCE
    reads = settings_reads()
    wrong = {}
    for name, cell in documented_defaults(document).items():
        documented = _documented_literal(cell)
        if documented is NO_DEFAULT:
            continue
        for in_code in reads.get(name, []):
            if in_code is not NO_DEFAULT and not _same_default(documented, in_code):
                wrong[name] = (cell, in_code)
    assert not wrong, f"{document.name}: documented default != settings.py default: {wrong}"
