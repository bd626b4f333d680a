"""docs/configuration.md and the code read the same environment variables: every variable read in
orgdns_site/settings.py (env("X"), envint("X", …), …) or with os.environ in orgdns_site/ and provisioning/ is in one of
its tables, every variable in its tables is read, and a default written in the code is the one documented."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "configuration.md"
SETTINGS = ROOT / "orgdns_site" / "settings.py"

# Documented but read by a library, not by our code (boto3's credential chain).
READ_BY_LIBRARIES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def settings_readers(tree):
    """The functions of settings.py that read a variable: env(name, …) and every env*(name, …) built on it."""
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("env")}


def is_os_environ(node):
    return isinstance(node, ast.Attribute) and node.attr == "environ" and getattr(node.value, "id", None) == "os"


def variables_read(path, readers=frozenset()):
    """{name: default or None} of every variable this module reads by a constant name."""
    found = {}
    for node in ast.walk(ast.parse(path.read_text())):
        name = default = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func
            if isinstance(function, ast.Name) and function.id in readers:
                name = node.args[0].value
                if len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                    default = node.args[1].value
            elif isinstance(function, ast.Attribute) and (
                (function.attr == "get" and is_os_environ(function.value))
                or (function.attr == "getenv" and getattr(function.value, "id", None) == "os")
            ):
                name = node.args[0].value
        elif (
            isinstance(node, ast.Subscript)
            and is_os_environ(node.value)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.ctx, ast.Load)
        ):
            name = node.slice.value
        if isinstance(name, str):
            found[name] = default
    return found


def variables_in_code():
    tree = ast.parse(SETTINGS.read_text())
    read = variables_read(SETTINGS, settings_readers(tree))
    for package in ("orgdns_site", "provisioning"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts and path != SETTINGS:
                read.update(variables_read(path))
    return read


def documented_rows():
    """{variable: (its default cell, its row)} from every table of docs/configuration.md (first column: the names)."""
    rows = {}
    for line in REFERENCE.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or set(cells[0]) <= set("-: "):
            continue
        for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0]):
            rows[name] = (cells[1], line)
    return rows


def test_the_reader_finds_the_ways_settings_are_read(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        'import os\nA = env("A_VAR", "x")\nB = envint("B_VAR", 5)\nC = os.environ.get("C_VAR")\n'
        'D = os.environ["D_VAR"]\nE = os.getenv("E_VAR", "1")\nos.environ["NOT_READ"] = "1"\nF = other("NOT_A_VAR")\n'
    )
    assert variables_read(module, {"env", "envint"}) == {
        "A_VAR": "x",
        "B_VAR": 5,
        "C_VAR": None,
        "D_VAR": None,
        "E_VAR": None,
    }


def test_every_variable_the_code_reads_is_documented():
    read = variables_in_code()
    assert len(read) > 60  # the reader still understands settings.py
    missing = sorted(set(read) - set(documented_rows()))
    rows = "\n".join(
        f"| `{name}` | {'?' if read[name] is None else as_documented(read[name])} | (what it means) |"
        for name in missing
    )
    assert not missing, f"read in the code but not in a table of docs/configuration.md; add rows such as:\n{rows}"


def test_every_documented_variable_is_read():
    stale = sorted(set(documented_rows()) - set(variables_in_code()) - READ_BY_LIBRARIES)
    assert not stale, f"in docs/configuration.md but read nowhere in the code: {', '.join(stale)}"


def as_documented(default):
    """How the reference writes a default given as a constant in the code."""
    if isinstance(default, bool):
        return "on" if default else "off"
    if default == "":
        return "empty"
    if isinstance(default, float):
        return f"`{default:g}`"
    return f"`{default}`"


def test_the_documented_defaults_are_the_code_s():
    rows = documented_rows()
    wrong = []
    for name, default in variables_in_code().items():
        if default is None or name not in rows or (isinstance(default, str) and len(default) > 60):
            continue  # computed, undocumented (the test above says so) or too long to repeat (the reserved names)
        cell, row = rows[name]
        if as_documented(default) not in cell:
            wrong.append(f"{name}: the code's default is {as_documented(default)}; the reference says {cell}")
    assert not wrong, "\n".join(wrong)
